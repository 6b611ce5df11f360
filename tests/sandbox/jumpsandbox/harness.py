"""Starting and stopping a sandbox from test code.

Used by the sandbox's own pytest suite; the Rust tests have a twin helper.
The sandbox runs as a child process with its own env file, so tests get the
same environment a user gets by sourcing that file.
"""

import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


class Sandbox:
    def __init__(self, step: float = 0.1, jumphost_image: str | None = None):
        self.dir = tempfile.mkdtemp(prefix="jump-sandbox-test-")
        self.env_file = os.path.join(self.dir, "sandbox.env")
        self.log = open(os.path.join(self.dir, "sandbox.log"), "wb")
        image = ["--jumphost-image", jumphost_image] if jumphost_image else []
        self.proc = subprocess.Popen(
            [str(HERE / "start"), "--env-file", self.env_file, "--step", str(step), *image],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 90
        while not os.path.exists(self.env_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"sandbox did not start:\n{self.output()}")
            time.sleep(0.05)
        self.env = dict(line.split("=", 1) for line in Path(self.env_file).read_text().splitlines() if "=" in line)

    def output(self) -> str:
        return Path(self.dir, "sandbox.log").read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode
