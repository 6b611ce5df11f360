"""Session Manager as AWS runs it, not as a kind sandbox would.

The published manual workflows run here as written, with only --endpoint-url
added: AWS CLI ``ecs execute-command`` and ``ssm start-session`` to an RDS
database, each with the session-manager-plugin stand-in on PATH. The exec
agent takes a few seconds to connect after it reports RUNNING, so each
workflow retries as a user would. The agent's port handshake carries the
document's properties, from which the plugin takes its local port. And a
client nobody here wrote, the npm package ssm-session, drives a shell through
the gateway as it drives one through AWS.
"""

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import botocore.exceptions
import pytest
from conftest import ctl
from jumpsandbox import ssmframe as f
from test_gateway import Client, exec_task, execute, module_exec_task, postgres_instance, target_of, until_connected

SANDBOX = Path(__file__).resolve().parents[1]
AWS_CLI = SANDBOX / ".venv" / "bin" / "aws"
STANDIN = SANDBOX / "session-manager-plugin-standin"
SSM_SESSION_JS = SANDBOX / ".venv" / "node" / "node_modules" / "ssm-session" / "dist" / "esm-node" / "ssm.js"
INTERNAL_ERROR = "The execute command failed due to an internal error. Try again later."


def error_of(call, **kwargs) -> dict:
    with pytest.raises(botocore.exceptions.ClientError) as info:
        call(**kwargs)
    return info.value.response["Error"]


@pytest.fixture(scope="module")
def task(aws):
    yield from module_exec_task(aws)


@pytest.fixture(scope="module")
def database(aws):
    yield from postgres_instance(aws, "sessionsdb", "sessions-secret", "ledger")


# ---- the exec agent connects a few seconds after RUNNING -------------------


def test_a_new_task_is_not_connected_until_its_agent_has_registered(aws):
    fresh = exec_task(aws)
    agent = fresh["containers"][0]["managedAgents"][0]
    assert agent["lastStatus"] == "RUNNING"
    connected_at = agent["lastStartedAt"].timestamp() + aws.timing()["agent_connect"]
    assert time.time() < connected_at, "the test came too late to see the agent connecting"

    refused = error_of(aws.ecs.execute_command, cluster=aws.cluster, task=fresh["taskArn"], command="sh",
                       interactive=True)
    assert refused == {"Code": "TargetNotConnectedException", "Message": INTERNAL_ERROR}
    target = target_of(aws, fresh)
    refused = error_of(aws.ssm.start_session, Target=target, DocumentName="AWS-StartPortForwardingSession")
    assert refused == {"Code": "TargetNotConnected", "Message": f"{target} is not connected."}

    session = execute(aws, fresh, "echo connected")  # retried until the agent answers
    assert time.time() >= connected_at
    assert b"connected" in Client(session["streamUrl"], session["tokenValue"]).drain()
    aws.ecs.stop_task(cluster=aws.cluster, task=fresh["taskArn"])


def test_ctl_timing_sets_how_long_the_agent_takes_to_connect(sandbox, aws):
    before = aws.timing()["agent_connect"]
    ctl(sandbox, "timing", "--agent-connect", "0")
    try:
        fresh = exec_task(aws)
        aws.ecs.execute_command(cluster=aws.cluster, task=fresh["taskArn"], command="true", interactive=True)
    finally:
        ctl(sandbox, "timing", "--agent-connect", str(before))
    aws.ecs.stop_task(cluster=aws.cluster, task=fresh["taskArn"])


# ---- the port handshake carries the document's properties ------------------


def handshake(aws, task, **request) -> dict:
    session = until_connected(lambda: aws.ssm.start_session(Target=target_of(aws, task), **request))
    client = Client(session["StreamUrl"], session["TokenValue"])
    msg = client.next()
    assert msg.payload_type == f.P_HANDSHAKE_REQUEST
    aws.ssm.terminate_session(SessionId=session["SessionId"])
    [action] = json.loads(msg.payload)["RequestedClientActions"]
    assert (action["ActionType"], action["ActionParameters"]["SessionType"]) == ("SessionType", "Port")
    return action["ActionParameters"]["Properties"]


@pytest.mark.parametrize("document, parameters, properties", [
    ("AWS-StartPortForwardingSession", {"portNumber": ["22"], "localPortNumber": ["5555"]},
     {"localPortNumber": "5555", "portNumber": "22", "type": "LocalPortForwarding"}),
    ("AWS-StartPortForwardingSessionToRemoteHost",
     {"host": ["db.internal"], "portNumber": ["5432"], "localPortNumber": ["15432"]},
     {"host": "db.internal", "localPortNumber": "15432", "portNumber": "5432", "type": "LocalPortForwarding"}),
    # The documents' defaults: remote port 80, local port 0 (the plugin picks a free one).
    ("AWS-StartPortForwardingSession", {},
     {"localPortNumber": "0", "portNumber": "80", "type": "LocalPortForwarding"}),
    ("AWS-StartPortForwardingSessionToRemoteHost", {"host": ["db.internal"]},
     {"host": "db.internal", "localPortNumber": "0", "portNumber": "80", "type": "LocalPortForwarding"}),
])
def test_the_port_handshake_carries_the_documents_properties(aws, task, document, parameters, properties):
    got = handshake(aws, task, DocumentName=document, Parameters=parameters)
    assert got == properties
    assert list(got) == sorted(got)  # a Go map on the wire: keys in order


# ---- StartSession checks what SSM checks ----------------------------------


@pytest.mark.parametrize("request_, code, message", [
    ({"DocumentName": "AWS-StartPortForwardingSession", "Parameters": {"portNumber": ["ssh"]}},
     "InvalidParameters", 'Parameter "portNumber" has value "ssh" not matching "^([1-9]|'),
    ({"DocumentName": "AWS-StartPortForwardingSession", "Parameters": {"portNumber": ["65536"]}},
     "InvalidParameters", 'Parameter "portNumber" has value "65536"'),
    ({"DocumentName": "AWS-StartPortForwardingSessionToRemoteHost",
      "Parameters": {"host": ["db;rm -rf /"], "portNumber": ["5432"]}},
     "InvalidParameters", 'Parameter "host" has value "db;rm -rf /" not matching'),
    ({"DocumentName": "AWS-StartPortForwardingSessionToRemoteHost", "Parameters": {"portNumber": ["5432"]}},
     "InvalidParameters", "host"),
    ({"DocumentName": "AWS-StartPortForwardingSession", "Parameters": {"remoteHost": ["db"]}},
     "InvalidParameters", "remoteHost"),
    ({"DocumentName": "My-Port-Forwarding"}, "InvalidDocument", "Document with name My-Port-Forwarding does not exist."),
    ({"DocumentName": "AWS-StartInteractiveCommand"}, "InvalidParameters", "command"),
    ({"DocumentName": "My Document"}, "ValidationException", "at 'documentName' failed to satisfy constraint"),
    ({"DocumentName": "AWS-StartSSHSession"}, "ValidationException", "The sandbox does not emulate the document"),
])
def test_start_session_refuses_what_ssm_refuses(aws, task, request_, code, message):
    error = error_of(aws.ssm.start_session, Target=target_of(aws, task), **request_)
    assert error["Code"] == code and message in error["Message"], error


def test_targets_and_session_ids_have_ssms_length_limits(aws):
    error = error_of(aws.ssm.start_session, Target="ecs:" + "x" * 400)
    assert error["Code"] == "ValidationException" and "Member must have length less than or equal to 400" in \
        error["Message"]
    error = error_of(aws.ssm.terminate_session, SessionId="s" * 97)
    assert error["Code"] == "ValidationException" and "less than or equal to 96" in error["Message"]


@pytest.mark.parametrize("request_", [
    {}, {"DocumentName": "SSM-SessionManagerRunShell"},
    {"DocumentName": "AWS-StartInteractiveCommand", "Parameters": {"command": ["/bin/sh"]}},
])
def test_start_session_without_a_port_document_is_a_shell_in_the_container(aws, task, request_):
    session = until_connected(lambda: aws.ssm.start_session(Target=target_of(aws, task), **request_))
    client = Client(session["StreamUrl"], session["TokenValue"])
    client.send(f.P_OUTPUT, b"echo shell-$((6*7)); exit\n")
    assert b"shell-42" in client.drain()


# ---- the agent's reading of client messages --------------------------------


def raw_input(seq: int, payload: bytes, digest_ok: bool = True, created: bool = True) -> bytes:
    data = bytearray(f.encode(f.Message(f.INPUT, seq, 0, uuid.uuid4(), f.P_OUTPUT, payload)))
    if not digest_ok:
        data[80:112] = bytes(32)
    if not created:
        data[40:48] = bytes(8)
    return bytes(data)


def test_the_agent_ignores_payload_digests_but_not_a_missing_created_date(aws, task):
    session = execute(aws, task, "/bin/sh")
    client = Client(session["streamUrl"], session["tokenValue"])
    client.ws.send(raw_input(0, b"echo dropped-$((1+1))\n", created=False))  # refused: no CreatedDate
    client.ws.send(raw_input(0, b"echo digest-$((2+2))\n", digest_ok=False))  # taken: the agent never checks
    client.ws.send(raw_input(1, b"exit\n"))
    out = client.drain()
    assert b"digest-4" in out and b"dropped-2" not in out


def test_the_plugin_side_checks_payload_digests():
    with pytest.raises(f.FrameError, match="digest"):
        f.decode(raw_input(0, b"abc", digest_ok=False))
    assert f.decode(raw_input(0, b"abc", digest_ok=False), check_digest=False).payload == b"abc"


# ---- the published workflows, with the AWS CLI -----------------------------


@pytest.fixture
def cli_env(aws, tmp_path):
    """The AWS CLI's environment, with the stand-in installed as session-manager-plugin on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "session-manager-plugin").symlink_to(STANDIN)
    log = tmp_path / "plugin.log"
    return {
        "PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(tmp_path), "JUMP_PLUGIN_STANDIN_LOG": str(log),
        "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": aws.env["AWS_REGION"],
    }


def cli(aws, env, *args, timeout=60) -> subprocess.CompletedProcess:
    """One AWS CLI command, tried again while the target is not yet connected, as a user would."""
    deadline = time.monotonic() + 30
    while True:
        out = subprocess.run([str(AWS_CLI), *args, "--endpoint-url", aws.env["AWS_ENDPOINT_URL"]], env=env,
                             capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if "TargetNotConnected" not in out.stderr or time.monotonic() > deadline:
            return out
        time.sleep(0.5)


def test_aws_cli_ecs_execute_command_as_documented(aws, cli_env):
    fresh = exec_task(aws)  # as a user does: exec into a task that has only just started
    out = cli(aws, cli_env, "ecs", "execute-command", "--cluster", aws.cluster, "--task", fresh["taskArn"],
              "--container", "jumphost", "--interactive", "--command", "sh -c 'echo cli-$((6*7)); hostname'")
    assert out.returncode == 0, out.stderr
    assert "The Session Manager plugin was installed successfully." in out.stdout  # the CLI's check first
    assert "\nStarting session with SessionId: ecs-" in out.stdout
    assert "cli-42" in out.stdout and "ip-10-" in out.stdout
    assert "Exiting session with sessionId: ecs-" in out.stdout
    aws.ecs.stop_task(cluster=aws.cluster, task=fresh["taskArn"])


def wait_connected(aws, task) -> None:
    """Returns once the task's agent takes sessions: a session that ends by itself proves it."""
    session = execute(aws, task, "true")
    Client(session["streamUrl"], session["tokenValue"]).drain()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def read_until(proc, needle: str, timeout=30) -> str:
    seen = b""
    deadline = time.monotonic() + timeout
    while needle.encode() not in seen:
        ready, _, _ = select.select([proc.stdout], [], [], max(0, deadline - time.monotonic()))
        assert ready, f"no {needle!r} in time; got {seen!r}"
        chunk = os.read(proc.stdout.fileno(), 4096)
        assert chunk, f"stdout closed before {needle!r}; got {seen!r}: {proc.stderr.read()!r}"
        seen += chunk
    return seen.decode()


def test_aws_cli_ssm_start_session_forwards_to_rds_as_documented(aws, task, database, cli_env):
    port = free_port()
    parameters = {"host": [database["Address"]], "portNumber": ["5432"], "localPortNumber": [str(port)]}
    argv = [str(AWS_CLI), "ssm", "start-session", "--target", target_of(aws, task),
            "--document-name", "AWS-StartPortForwardingSessionToRemoteHost", "--parameters", json.dumps(parameters),
            "--endpoint-url", aws.env["AWS_ENDPOINT_URL"]]
    wait_connected(aws, task)  # a Popen'd CLI is not retried below
    proc = subprocess.Popen(argv, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        shown = read_until(proc, "Waiting for connections...\n")
        assert f"Port {port} opened for sessionId " in shown
        out = subprocess.run(
            ["psql", f"host=localhost port={port} user=app password=sessions-secret dbname=ledger",
             "-Atc", "select current_database(), 6*7"], capture_output=True, text=True, timeout=30,
        )
        assert (out.returncode, out.stdout.strip()) == (0, "ledger|42"), out.stderr
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C at the terminal: the CLI ignores it, the plugin ends
        stdout, _ = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0
    assert "Exiting session with sessionId:" in stdout.decode()
    [logged] = [json.loads(line) for line in Path(cli_env["JUMP_PLUGIN_STANDIN_LOG"]).read_text().splitlines()
                if "--version" not in line]
    assert logged["argv"][0] == "AWS_SSM_START_SESSION_RESPONSE"  # the response came through the environment
    assert json.loads(logged["argv"][4])["Parameters"] == parameters


# ---- a second opinion: the npm package ssm-session --------------------------

SSM_SESSION_SCRIPT = """
import ssm from %s;
const [url, token, typed] = process.argv.slice(2);
const socket = new WebSocket(url);
socket.binaryType = "arraybuffer";
socket.onopen = () => {
  ssm.init(socket, { token, termOptions: { rows: 33, cols: 111 } });
  ssm.sendText(socket, new TextEncoder().encode(typed));
};
socket.onmessage = (event) => {
  if (typeof event.data === "string") return;
  const message = ssm.decode(event.data);
  if (message.messageType === "output_stream_data") {
    ssm.sendACK(socket, message);
    if (message.payloadType === 1) process.stdout.write(new TextDecoder().decode(message.payload));
  } else if (message.messageType === "channel_closed") {
    socket.close();
  }
};
socket.onclose = () => process.exit(0);
setTimeout(() => process.exit(3), 20000);
"""


def test_the_npm_ssm_session_client_drives_a_shell(aws, task, tmp_path):
    assert shutil.which("node") and SSM_SESSION_JS.exists(), (
        "node and the npm package ssm-session are missing: run tests/sandbox/setup"
    )
    script = tmp_path / "shell.mjs"
    script.write_text(SSM_SESSION_SCRIPT % json.dumps(str(SSM_SESSION_JS)))
    session = execute(aws, task, "/bin/sh")
    out = subprocess.run(
        ["node", "--experimental-websocket", "--no-warnings", str(script), session["streamUrl"],
         session["tokenValue"], "echo npm-$((6*7)); stty size; exit\n"],
        capture_output=True, text=True, timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert "npm-42" in out.stdout and "33 111" in out.stdout  # its input, and the size it sent first
