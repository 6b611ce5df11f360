"""The session-manager-plugin stand-in, run as jump runs a plugin: a process with the AWS CLI's arguments."""

import json
import os
import select
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
from conftest import ctl
from jumpsandbox import ssmframe as f
from test_gateway import module_exec_task, postgres_instance, until_connected
from websockets.sync.server import serve

STANDIN = Path(__file__).resolve().parents[1] / "session-manager-plugin-standin"


@pytest.fixture(scope="module")
def task(aws):
    yield from module_exec_task(aws)


@pytest.fixture(scope="module")
def database(aws):
    yield from postgres_instance(aws, "plugindb", "plugin-secret", "orders")


@pytest.fixture
def log(tmp_path, monkeypatch):
    path = tmp_path / "plugin.log"
    monkeypatch.setenv("JUMP_PLUGIN_STANDIN_LOG", str(path))
    return path


def target(aws, task) -> str:
    return f"ecs:{aws.cluster}_{task['taskArn'].split('/')[-1]}_{task['containers'][0]['runtimeId']}"


def exec_argv(aws, task, command) -> list[str]:
    """What the AWS CLI passes for `aws ecs execute-command`: the session object keeps ECS's camelCase."""
    session = until_connected(lambda: aws.ecs.execute_command(
        cluster=aws.cluster, task=task["taskArn"], command=command, interactive=True))
    request = {"Target": target(aws, task)}
    return [json.dumps(session["session"]), aws.env["AWS_REGION"], "StartSession", "", json.dumps(request),
            aws.env["AWS_ENDPOINT_URL"]]


def run(argv, stdin=b"", env=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(STANDIN), *argv], input=stdin, capture_output=True, timeout=30,
                          env={**os.environ, **(env or {})})


def test_without_arguments_it_only_says_it_is_installed(log):
    out = run([])  # what `aws ecs execute-command` runs before calling ExecuteCommand
    assert (out.returncode, out.stderr) == (0, b"")
    assert out.stdout == b"\nThe Session Manager plugin was installed successfully. Use the AWS CLI to start a session.\n\n"


def test_the_session_can_come_through_the_environment(aws, task):
    argv = exec_argv(aws, task, "echo from-env")
    session, argv[0] = argv[0], "AWS_SSM_START_SESSION_RESPONSE"
    out = run(argv, env={"AWS_SSM_START_SESSION_RESPONSE": session})
    assert out.returncode == 0, out.stderr
    assert b"from-env\r\n" in out.stdout
    out = run(argv)
    assert out.returncode == 1 and b"AWS_SSM_START_SESSION_RESPONSE, which is not set" in out.stderr


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
    session = until_connected(lambda: aws.ssm.start_session(**request))
    argv = port_argv(aws, session, request)
    argv[3] = "default"
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


def port_argv(aws, session, request) -> list[str]:
    return [json.dumps({k: session[k] for k in ("SessionId", "StreamUrl", "TokenValue")}), aws.env["AWS_REGION"],
            "StartSession", "", json.dumps(request), aws.env["AWS_ENDPOINT_URL"]]


@pytest.mark.parametrize("local_port", ["given", "default"])
def test_the_local_port_comes_from_the_handshake_not_the_request(aws, task, local_port):
    """The agent's handshake says where to listen; the request JSON the CLI passes is only read for its Target."""
    port = free_port()
    parameters = {"portNumber": ["22"]}
    if local_port == "given":
        parameters["localPortNumber"] = [str(port)]
    request = {"Target": target(aws, task), "DocumentName": "AWS-StartPortForwardingSession", "Parameters": parameters}
    session = until_connected(lambda: aws.ssm.start_session(**request))
    told = {**request, "Parameters": {"portNumber": ["22"], "localPortNumber": [str(free_port())]}}
    proc = subprocess.Popen([str(STANDIN), *port_argv(aws, session, told)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        shown = read_until(proc, b"Waiting for connections...\n").decode()
        listening = int(shown.split("Port ")[1].split(" ")[0])
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=15)
    finally:
        proc.kill()
    assert listening != int(told["Parameters"]["localPortNumber"][0])
    if local_port == "given":
        assert listening == port
    else:
        assert listening > 0  # "0": any free port


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


class FakeAgent:
    """One data channel whose agent asks for a session of this type, and notes what the client answered."""

    def __init__(self, session_type: str, properties: dict):
        self.request = {"AgentVersion": "3.3.1142.0", "RequestedClientActions": [{
            "ActionType": "SessionType", "ActionParameters": {"SessionType": session_type, "Properties": properties},
        }]}
        self.answers: list[f.Message] = []
        self.server = serve(self.serve, "127.0.0.1", 0)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"ws://127.0.0.1:{self.server.socket.getsockname()[1]}/v1/data-channel/s-1"

    def serve(self, ws) -> None:
        ws.recv()  # the opening message
        ws.send(f.encode(f.data_message(0, f.P_HANDSHAKE_REQUEST, json.dumps(self.request).encode())))
        for raw in ws:
            msg = f.decode(raw)
            if msg.message_type != f.INPUT:
                continue
            ws.send(f.encode(f.ack_for(msg)))
            self.answers.append(msg)
            if msg.payload_type == f.P_HANDSHAKE_RESPONSE:
                response = json.loads(msg.payload)
                if response["ProcessedClientActions"][0]["ActionStatus"] != 1:
                    ws.send(f.encode(f.channel_closed("s-1", "the client refused the session type")))
                    return
                complete = {"HandshakeTimeToComplete": 1, "CustomerMessage": ""}
                ws.send(f.encode(f.data_message(1, f.P_HANDSHAKE_COMPLETE, json.dumps(complete).encode())))
            elif msg.payload_type == f.P_FLAG:
                ws.send(f.encode(f.channel_closed("s-1")))
                return

    def argv(self) -> list[str]:
        session = {"SessionId": "s-1", "StreamUrl": self.url, "TokenValue": str(uuid.uuid4())}
        return [json.dumps(session), "us-east-1", "StartSession", "", '{"Target": "ecs:c_0123_456"}',
                "http://127.0.0.1:1"]

    def close(self) -> None:
        self.server.shutdown()


def test_an_unknown_session_type_is_refused_in_the_handshake():
    agent = FakeAgent("Bogus", {})
    try:
        out = run(agent.argv())
    finally:
        agent.close()
    response = json.loads(agent.answers[0].payload)
    assert response["ProcessedClientActions"][0]["ActionStatus"] == 2  # failed
    assert response["Errors"] == ["Unknown session type Bogus"]
    assert out.returncode == 0 and b"the client refused the session type" in out.stdout


def test_a_port_session_it_cannot_play_ends_the_session():
    agent = FakeAgent("Port", {"portNumber": "22", "type": "StandardStream"})
    try:
        out = run(agent.argv())
    finally:
        agent.close()
    assert out.returncode == 1
    assert b"forwards local ports only, not a 'StandardStream' session" in out.stderr
    assert agent.answers[-1].payload_type == f.P_FLAG  # TerminateSession
