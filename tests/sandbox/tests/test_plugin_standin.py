"""The session-manager-plugin stand-in, run as jump runs a plugin: a process with the AWS CLI's arguments."""

import json
import os
import select
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from conftest import ctl
from test_gateway import exec_task

STANDIN = Path(__file__).resolve().parents[1] / "session-manager-plugin-standin"


@pytest.fixture(scope="module")
def task(aws):
    running = exec_task(aws)
    yield running
    aws.ecs.stop_task(cluster=aws.cluster, task=running["taskArn"])


@pytest.fixture(scope="module")
def database(aws):
    aws.rds.create_db_instance(
        DBInstanceIdentifier="plugindb", Engine="postgres", DBInstanceClass="db.t3.micro",
        MasterUsername="app", MasterUserPassword="plugin-secret", DBName="orders", AllocatedStorage=20,
    )
    yield aws.rds.describe_db_instances(DBInstanceIdentifier="plugindb")["DBInstances"][0]["Endpoint"]
    aws.rds.delete_db_instance(DBInstanceIdentifier="plugindb", SkipFinalSnapshot=True)


@pytest.fixture
def log(tmp_path, monkeypatch):
    path = tmp_path / "plugin.log"
    monkeypatch.setenv("JUMP_PLUGIN_STANDIN_LOG", str(path))
    return path


def target(aws, task) -> str:
    return f"ecs:{aws.cluster}_{task['taskArn'].split('/')[-1]}_{task['containers'][0]['runtimeId']}"


def exec_argv(aws, task, command) -> list[str]:
    """What the AWS CLI passes for `aws ecs execute-command`: the session object keeps ECS's camelCase."""
    session = aws.ecs.execute_command(cluster=aws.cluster, task=task["taskArn"], command=command, interactive=True)
    request = {"Target": target(aws, task)}
    return [json.dumps(session["session"]), aws.env["AWS_REGION"], "StartSession", "", json.dumps(request),
            aws.env["AWS_ENDPOINT_URL"]]


def run(argv, stdin=b"") -> subprocess.CompletedProcess:
    return subprocess.run([str(STANDIN), *argv], input=stdin, capture_output=True, timeout=30)


def test_exec_prints_the_output_and_logs_its_arguments(aws, task, log):
    argv = exec_argv(aws, task, "echo hi")
    out = run(argv)
    assert (out.returncode, out.stderr) == (0, b"")
    session_id = json.loads(argv[0])["sessionId"]
    stdout = out.stdout.decode()
    assert "hi\r\n" in stdout
    assert stdout.startswith(f"\nStarting session with SessionId: {session_id}\n")
    assert stdout.endswith(f"\n\nExiting session with sessionId: {session_id}.\n\n")
    assert [json.loads(line) for line in log.read_text().splitlines()] == [{"argv": argv}]


def test_the_remote_exit_status_is_lost_as_with_the_official_plugin(aws, task):
    out = run(exec_argv(aws, task, "sh -c 'exit 3'"))
    assert out.returncode == 0, out.stderr


def test_stdin_reaches_the_shell(aws, task):
    out = run(exec_argv(aws, task, "/bin/sh"), stdin=b"echo $((6*7)); stty size; exit\n")
    assert out.returncode == 0, out.stderr
    assert b"42\r\n" in out.stdout
    assert b"100 300\r\n" in out.stdout  # no terminal here: the official plugin's fallback size


def test_a_faulty_channel_still_delivers_every_line_in_order(sandbox, aws, task):
    ctl(sandbox, "gateway-fault", "--drop", "0.1", "--duplicate", "0.1", "--delay", "0.1")
    try:
        out = run(exec_argv(aws, task, "seq 1 30000"))
    finally:
        ctl(sandbox, "clear")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split(b"\r\n")
    assert lines[0].endswith(b"\n1") and lines[1:-1] == [str(n).encode() for n in range(2, 30001)]


def read_until(proc, needle: bytes, timeout=15) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        ready, _, _ = select.select([proc.stdout], [], [], max(0, deadline - time.monotonic()))
        assert ready, f"no {needle!r} in time; got {seen!r}"
        chunk = os.read(proc.stdout.fileno(), 4096)
        assert chunk, f"stdout closed before {needle!r}; got {seen!r}"
        seen += chunk
    return seen


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_port_forwarding_to_the_database(aws, task, database, stop):
    port = free_port()
    request = {
        "Target": target(aws, task), "DocumentName": "AWS-StartPortForwardingSessionToRemoteHost",
        "Parameters": {"host": [database["Address"]], "portNumber": [str(database["Port"])],
                       "localPortNumber": [str(port)]},
    }
    session = aws.ssm.start_session(**request)
    argv = [json.dumps({k: session[k] for k in ("SessionId", "StreamUrl", "TokenValue")}), aws.env["AWS_REGION"],
            "StartSession", "default", json.dumps(request), aws.env["AWS_ENDPOINT_URL"]]
    proc = subprocess.Popen([str(STANDIN), *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    try:
        shown = read_until(proc, b"Waiting for connections...\n")
        assert f"Port {port} opened for sessionId {session['SessionId']}.\n".encode() in shown
        for query in ("select current_database(), 6*7", "select 'a second stream'"):
            out = subprocess.run(
                ["psql", f"host=127.0.0.1 port={port} user=app password=plugin-secret dbname=orders",
                 "-Atc", query], capture_output=True, text=True, timeout=30,
            )
            assert out.returncode == 0, out.stderr
            assert out.stdout.strip() in ("orders|42", "a second stream")
        proc.send_signal(stop)
        stdout, stderr = proc.communicate(timeout=15)
    finally:
        proc.kill()
    assert (proc.returncode, stderr) == (0, b"")
    session_id = session["SessionId"]
    assert f"\nConnection accepted for session [{session_id}]\n".encode() in stdout
    ending = f"Terminate signal received, exiting.\n\n\nExiting session with sessionId: {session_id}.\n\n"
    assert stdout.endswith(ending.encode())
    ended = aws.ssm.describe_sessions(State="History")["Sessions"]
    assert session_id in {s["SessionId"] for s in ended}


@pytest.mark.parametrize("change, message", [
    (lambda a: a[:5], "expected 6 arguments"),
    (lambda a: a + ["extra"], "expected 6 arguments"),
    (lambda a: a[:2] + ["ResumeSession"] + a[3:], "Invalid Operation"),
    (lambda a: ["{not json"] + a[1:], "not JSON"),
    (lambda a: ['{"sessionId": "s", "streamUrl": "ws://127.0.0.1:1/"}'] + a[1:], "no TokenValue"),
    (lambda a: a[:4] + ['{"target": 1}'] + a[5:], "Target"),
    (lambda a: a[:4] + ['{"Target": "i-0123", "DocumentName": "AWS-StartSSHSession"}'] + a[5:], "Target"),
    (lambda a: a[:5] + ["127.0.0.1:4566"], "endpoint"),
])
def test_bad_arguments_are_refused(change, message, log):
    good = ['{"SessionId": "s", "StreamUrl": "ws://127.0.0.1:1/", "TokenValue": "t"}', "us-east-1", "StartSession",
            "", '{"Target": "ecs:c_0123_456"}', "http://127.0.0.1:4566"]
    argv = change(good)
    out = run(argv)
    assert out.returncode == 1
    assert out.stdout == b""
    assert message in out.stderr.decode()
    assert json.loads(log.read_text()) == {"argv": argv}
