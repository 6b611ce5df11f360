"""The message gateway, checked with a minimal client written here.

jump's own client is checked against the same gateway by the Rust end-to-end
tests; this one only has to be simple enough to trust.
"""

import hashlib
import json
import struct
import time
import uuid

import botocore.exceptions
import pytest
from conftest import ctl
from jumpsandbox import ssmframe as f
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect


class Client:
    """Opens a data channel, acks what it receives, numbers what it sends."""

    def __init__(self, url: str, token: str, version: str = "1.2.0.0", ack: bool = True):
        self.ws = connect(url, max_size=None, legacy=True)  # held open across calls, not a with-block
        self.ws.send(json.dumps({"MessageSchemaVersion": "1.0", "RequestId": str(uuid.uuid4()),
                                 "TokenValue": token, "ClientId": str(uuid.uuid4()), "ClientVersion": version}))
        self.ack = ack
        self.seq = 0
        self.expected = 0
        self.early = {}
        self.closed = None
        self.received = []  # sequence numbers as they arrived, duplicates included

    def resumed(self, url: str, token: str) -> "Client":
        """A new connection to the same session (after ResumeSession), carrying on where this one was."""
        other = Client(url, token, ack=self.ack)
        other.seq, other.expected, other.early = self.seq, self.expected, self.early
        other.received = self.received
        return other

    def send(self, payload_type: int, payload: bytes) -> None:
        msg = f.Message(f.INPUT, self.seq, 0, uuid.uuid4(), payload_type, payload)
        self.seq += 1
        self.ws.send(f.encode(msg))

    def next(self, timeout: float = 10) -> f.Message | None:
        """The next in-order data message, or None once the channel is closed."""
        deadline = time.monotonic() + timeout
        while self.expected not in self.early:
            if self.closed is not None:
                return None
            try:
                raw = self.ws.recv(timeout=max(0.01, deadline - time.monotonic()))
            except TimeoutError:
                raise AssertionError("no message in time") from None
            except Exception as err:  # the connection went away
                self.closed = repr(err)
                return None
            msg = f.decode(raw)
            if msg.message_type == f.CHANNEL_CLOSED:
                self.closed = json.loads(msg.payload).get("Output", "")
            elif msg.message_type == f.OUTPUT:
                self.received.append(msg.sequence)
                if self.ack:
                    try:
                        self.ws.send(f.encode(f.ack_for(msg)))
                    except ConnectionClosed:
                        pass  # the agent closed the socket as this message arrived: keep it
                if msg.sequence >= self.expected:
                    self.early[msg.sequence] = msg
        self.expected += 1
        return self.early.pop(self.expected - 1)

    def read_until(self, needle: bytes, timeout: float = 10) -> bytes:
        data = b""
        while needle not in data:
            msg = self.next(timeout)
            assert msg is not None, f"closed before {needle!r}; got {data!r}"
            data += msg.payload
        return data

    def drain(self) -> bytes:
        data = b""
        while (msg := self.next()) is not None:
            data += msg.payload
        return data


NOT_CONNECTED = ("TargetNotConnectedException", "TargetNotConnected")


def until_connected(call, timeout: float = 20):
    """CALL's answer once the task's exec agent has connected, retrying as a client must on AWS.

    For a few seconds after the agent reports RUNNING, ECS answers TargetNotConnectedException
    and SSM TargetNotConnected.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except botocore.exceptions.ClientError as err:
            if err.response["Error"]["Code"] not in NOT_CONNECTED or time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def exec_role(aws, name: str, *actions: str) -> str:
    """A task role ECS can assume, allowed to open the exec agent's channels and ACTIONS."""
    arn = aws.role(name)
    channels = ["ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
                "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel"]
    aws.iam.put_role_policy(RoleName=name, PolicyName="exec", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": channels + list(actions), "Resource": "*"}],
    }))
    return arn


def exec_task(aws, env=None):
    task = aws.run(env=env, enableExecuteCommand=True)
    running, _ = aws.wait_for(task["taskArn"], "RUNNING")
    return running


def module_exec_task(aws):
    """For a module's fixture: an exec-enabled running task, stopped when the module is done."""
    running = exec_task(aws)
    yield running
    aws.ecs.stop_task(cluster=aws.cluster, task=running["taskArn"])


def postgres_instance(aws, identifier, password, db_name=None):
    """For a module's fixture: an RDS PostgreSQL instance's endpoint, deleted when it is done."""
    named = {"DBName": db_name} if db_name else {}
    aws.rds.create_db_instance(
        DBInstanceIdentifier=identifier, Engine="postgres", DBInstanceClass="db.t3.micro",
        MasterUsername="app", MasterUserPassword=password, AllocatedStorage=20, **named,
        VpcSecurityGroupIds=[aws.database_group(f"{identifier}-db")],
    )
    yield aws.rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]["Endpoint"]
    aws.rds.delete_db_instance(DBInstanceIdentifier=identifier, SkipFinalSnapshot=True)


def execute(aws, task, command, cluster=None):
    """ExecuteCommand's session, retried until the agent has connected."""
    return until_connected(lambda: aws.ecs.execute_command(
        cluster=cluster or aws.cluster, task=task["taskArn"], command=command, interactive=True))["session"]


def exec_session(aws, command, env=None) -> tuple[dict, Client]:
    """A new exec-enabled task and a connected session running COMMAND in it."""
    task = exec_task(aws, env=env)
    session = execute(aws, task, command)
    return task, Client(session["streamUrl"], session["tokenValue"])


def test_command_output_then_channel_closed(aws):
    task, client = exec_session(aws, "sh -c 'echo $GREETING; hostname; exit 7'", env={"GREETING": "hello-from-the-task"})
    out = client.drain().decode()
    assert "hello-from-the-task" in out
    assert f"ip-{task['containers'][0]['networkInterfaces'][0]['privateIpv4Address'].replace('.', '-')}" in out
    assert client.closed is not None
    aws.ecs.stop_task(cluster=aws.cluster, task=task["taskArn"])


def test_interactive_shell_on_a_pty_with_resize(aws):
    task, client = exec_session(aws, "/bin/sh")
    client.send(f.P_SIZE, json.dumps({"cols": 132, "rows": 43}).encode())
    client.send(f.P_OUTPUT, b"echo $((6*7)); stty size; tty\n")
    out = client.read_until(b"/dev/pts/")
    assert b"42" in out and b"43 132" in out
    client.send(f.P_SIZE, json.dumps({"cols": 80, "rows": 24}).encode())
    client.send(f.P_OUTPUT, b"stty size\n")
    assert b"24 80" in client.read_until(b"24 80")
    client.send(f.P_OUTPUT, b"exit\n")
    client.drain()
    assert client.closed is not None
    aws.ecs.stop_task(cluster=aws.cluster, task=task["taskArn"])


def test_ctrl_c_reaches_the_remote_process_group(aws):
    task, client = exec_session(aws, "/bin/sh")
    started = time.monotonic()
    client.send(f.P_OUTPUT, b"sleep 30\n")
    time.sleep(0.5)
    client.send(f.P_OUTPUT, b"\x03")
    client.send(f.P_OUTPUT, b"echo still-$((1+1))\n")
    client.read_until(b"still-2\r\n")  # the shell survived; only sleep was interrupted
    assert time.monotonic() - started < 10
    client.send(f.P_OUTPUT, b"exit\n")
    client.drain()
    aws.ecs.stop_task(cluster=aws.cluster, task=task["taskArn"])


@pytest.mark.parametrize("faults", [
    ["--drop", "0.2"], ["--duplicate", "0.3"], ["--delay", "0.3", "--delay-ms", "30"],
    ["--drop", "0.1", "--duplicate", "0.1", "--delay", "0.1"],
])
def test_faulty_channel_still_delivers_every_byte_in_order(sandbox, aws, faults):
    task = exec_task(aws)
    ctl(sandbox, "gateway-fault", *faults)
    try:
        session = execute(aws, task, "sh -c 'head -c 300000 /dev/urandom | od -An -tx1 -v -w32 | tr -d \" \"; echo END'")
        client = Client(session["streamUrl"], session["tokenValue"])
        out = client.drain().replace(b"\r\n", b"\n")
    finally:
        ctl(sandbox, "clear")
    lines = out.split(b"\n")
    assert lines[-2] == b"END"
    assert len(lines[:-2]) == 300000 // 32 and all(len(line) == 64 for line in lines[:-2])
    # Each fault shows in the arrival order: repeats (duplicate) or overtaking (drop, delay).
    disturbed = len(client.received) > len(set(client.received)) or client.received != sorted(client.received)
    assert disturbed, "the fault was never exercised"
    aws.ecs.stop_task(cluster=aws.cluster, task=task["taskArn"])


def test_withheld_acks_stop_the_agent(aws):
    task = exec_task(aws)
    session = execute(aws, task, "sh -c 'head -c 20000000 /dev/zero | od -v'")
    client = Client(session["streamUrl"], session["tokenValue"], ack=False)
    seen = set()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            seen.add(f.decode(client.ws.recv(timeout=0.2)).sequence)
        except TimeoutError:
            pass
    # A bounded window: without acks the agent stops after a few hundred messages
    # and only retransmits those, instead of sending all 20 MB.
    assert 0 < len(seen) <= 256, len(seen)
    client.ws.close()
    aws.ecs.stop_task(cluster=aws.cluster, task=task["taskArn"])


def test_killed_connection(sandbox, aws):
    task = exec_task(aws)
    ctl(sandbox, "gateway-fault", "--kill-after", "0.5")
    try:
        session = execute(aws, task, "/bin/sh")
        client = Client(session["streamUrl"], session["tokenValue"])
        started = time.monotonic()
        assert client.next(timeout=5) is None or client.drain() is not None
        assert time.monotonic() - started < 3
        assert client.closed is not None
    finally:
        ctl(sandbox, "clear")
    aws.ecs.stop_task(cluster=aws.cluster, task=task["taskArn"])


def status_of(aws, session_id: str) -> list[str]:
    active = aws.ssm.describe_sessions(State="Active")["Sessions"]
    return [s["Status"] for s in active if s["SessionId"] == session_id]


def follow(aws, client: Client, session: dict) -> tuple[bytes, int]:
    """Everything the session says, resuming it each time its connection ends, and the
    number of connections that took; checks on the way that a lost connection leaves the
    session Disconnected and that each resume retires the token before it."""
    data, connections = b"", 1
    while True:
        while (msg := client.next()) is not None:
            data += msg.payload
        if not client.closed.startswith("Connection"):  # channel_closed's output: the session ended
            return data, connections
        deadline = time.monotonic() + 5  # the gateway learns of the loss a moment after the client
        while status_of(aws, session["sessionId"]) != ["Disconnected"]:
            assert time.monotonic() < deadline, status_of(aws, session["sessionId"])
            time.sleep(0.05)
        resumed = aws.ssm.resume_session(SessionId=session["sessionId"])
        assert resumed["SessionId"] == session["sessionId"]
        with pytest.raises(ConnectionClosed):  # the token before it opens nothing any more
            Client(resumed["StreamUrl"], session["tokenValue"]).ws.recv(timeout=5)
        session["tokenValue"] = resumed["TokenValue"]
        client = client.resumed(resumed["StreamUrl"], resumed["TokenValue"])
        connections += 1
        assert connections < 10, data


def connected_under(sandbox, aws, task, command: str, *fault: str) -> tuple[dict, Client]:
    """A session running COMMAND whose first connection opened while FAULT was set."""
    ctl(sandbox, "gateway-fault", *fault)
    try:  # a session's faults are the ones set when its first connection opens
        session = execute(aws, task, command)
        return session, Client(session["streamUrl"], session["tokenValue"])
    finally:
        ctl(sandbox, "clear")


def test_a_session_outlives_its_connection_and_resumes_where_it_was(sandbox, aws):
    task = exec_task(aws)
    ticks = "sh -c 'for i in 1 2 3 4 5 6; do echo tick-$i; sleep 0.4; done; exit 0'"
    session, client = connected_under(sandbox, aws, task, ticks, "--recycle-every", "1")
    data, connections = follow(aws, client, session)
    lines = data.decode().split()
    assert lines == [f"tick-{i}" for i in range(1, 7)], lines  # in order, none lost, none twice
    assert connections >= 3, connections  # the command takes 2.4 s, each connection 1 s
    aws.ecs.stop_task(cluster=aws.cluster, task=task["taskArn"])


def test_a_terminated_session_cannot_be_resumed(aws):
    task = exec_task(aws)
    session = execute(aws, task, "sleep 30")
    aws.ssm.terminate_session(SessionId=session["sessionId"])
    with pytest.raises(aws.ssm.exceptions.DoesNotExistException):
        aws.ssm.resume_session(SessionId=session["sessionId"])
    with pytest.raises(aws.ssm.exceptions.DoesNotExistException):
        aws.ssm.resume_session(SessionId="nobody-0123456789abcdef0")
    aws.ecs.stop_task(cluster=aws.cluster, task=task["taskArn"])


def test_a_broken_connection_resumes_and_a_killed_session_does_not(sandbox, aws):
    task = exec_task(aws)
    command = "sh -c 'sleep 1.5; echo after-the-breaks'"
    session, client = connected_under(sandbox, aws, task, command, "--break-every", "0.7")
    data, connections = follow(aws, client, session)
    assert data.strip() == b"after-the-breaks" and connections >= 3, (data, connections)

    session, client = connected_under(sandbox, aws, task, "sleep 30", "--kill-after", "0.5")
    assert client.next() is None
    with pytest.raises(aws.ssm.exceptions.DoesNotExistException):
        aws.ssm.resume_session(SessionId=session["sessionId"])
    aws.ecs.stop_task(cluster=aws.cluster, task=task["taskArn"])


def test_a_stalled_connection_goes_silent_without_closing_and_resumes(sandbox, aws):
    task = exec_task(aws)
    command = "sh -c 'sleep 4; echo after-the-stall'"
    session, client = connected_under(sandbox, aws, task, command, "--stall-every", "3")
    deadline = time.monotonic() + 10
    while client.ws.ping().wait(1):  # answered: not stalled yet
        assert time.monotonic() < deadline, "the connection never went silent"
        time.sleep(0.2)
    with pytest.raises(TimeoutError):  # silent, and not closed either
        client.ws.recv(timeout=0.5)
    resumed = aws.ssm.resume_session(SessionId=session["sessionId"])
    client = client.resumed(resumed["StreamUrl"], resumed["TokenValue"])
    assert b"after-the-stall" in client.read_until(b"after-the-stall")
    aws.ecs.stop_task(cluster=aws.cluster, task=task["taskArn"])


def test_the_idle_timeout_counts_client_input_only_and_ends_the_session_for_good(sandbox, aws):
    task = exec_task(aws)
    # Output flowing and acknowledged all along is not activity: the service ends the session.
    chatter = "sh -c 'while true; do echo out; sleep 0.2; done'"
    session, client = connected_under(sandbox, aws, task, chatter, "--idle-close", "1")
    data = client.drain()
    assert data.count(b"out") >= 2, data
    assert client.closed == "Your session timed out due to inactivity and has been terminated."
    with pytest.raises(aws.ssm.exceptions.DoesNotExistException):
        aws.ssm.resume_session(SessionId=session["sessionId"])

    # Input keeps it: a shell typed into every half second outlives a 3 s limit.
    session, client = connected_under(sandbox, aws, task, "/bin/sh", "--idle-close", "3")
    for i in range(10):
        client.send(f.P_OUTPUT, f"echo typed-$(({i}+1))\n".encode())
        client.read_until(f"typed-{i + 1}\r\n".encode())
        time.sleep(0.5)
    assert client.closed is None
    client.send(f.P_OUTPUT, b"exit\n")
    client.drain()
    assert client.closed != "Your session timed out due to inactivity and has been terminated."
    aws.ecs.stop_task(cluster=aws.cluster, task=task["taskArn"])


def test_stopping_the_task_ends_its_sessions(aws):
    task, client = exec_session(aws, "/bin/sh")
    aws.ecs.stop_task(cluster=aws.cluster, task=task["taskArn"])
    client.drain()
    assert client.closed is not None


def test_an_exec_session_counts_as_activity_for_the_idle_timeout(aws):
    # The session must start within the idle limit, or the task ends before it can: 8 s
    # leaves a loaded machine room; the session then lasts half as long again.
    task, client = exec_session(aws, "sleep 12", env={"JUMP_IDLE_SECONDS": "8", "JUMP_WATCH_INTERVAL": "1"})
    client.drain()
    assert aws.describe(task["taskArn"])["lastStatus"] == "RUNNING"
    aws.wait_for(task["taskArn"], "STOPPED", timeout=20)


def test_wrong_token_is_refused(aws):
    task = exec_task(aws)
    session = execute(aws, task, "/bin/sh")
    client = Client(session["streamUrl"], "not-the-token")
    assert client.next(timeout=5) is None
    aws.ecs.stop_task(cluster=aws.cluster, task=task["taskArn"])


def test_execute_command_preconditions(aws):
    plain = aws.run()
    aws.wait_for(plain["taskArn"], "RUNNING")
    with pytest.raises(botocore.exceptions.ClientError) as info:
        execute(aws, plain, "/bin/sh")
    assert "execute command was not enabled" in info.value.response["Error"]["Message"]
    with pytest.raises(botocore.exceptions.ClientError) as info:
        aws.ecs.execute_command(cluster=aws.cluster, task=plain["taskArn"], command="sh", interactive=False)
    assert "Interactive is the only mode" in info.value.response["Error"]["Message"]
    with pytest.raises(botocore.exceptions.ClientError) as info:
        aws.ecs.execute_command(cluster=aws.cluster, task="0" * 32, command="sh", interactive=True)
    assert info.value.response["Error"]["Code"] == "InvalidParameterException"
    with pytest.raises(botocore.exceptions.ClientError) as info:
        aws.ecs.execute_command(cluster=aws.cluster, task="not-a-task", command="sh", interactive=True)
    assert info.value.response["Error"]["Message"] == "task length should be one of [32,36]"
    aws.ecs.stop_task(cluster=aws.cluster, task=plain["taskArn"])


def test_task_role_without_data_channel_permission(sandbox, aws):
    role = exec_role(aws, "no-ssmmessages")
    aws.ecs.register_task_definition(
        family="norole", requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="256", memory="512",
        taskRoleArn=role, containerDefinitions=[{"name": "jumphost", "image": "jump/jumphost:latest"}],
    )
    task = aws.run(family="norole", enableExecuteCommand=True)
    aws.wait_for(task["taskArn"], "RUNNING")
    execute(aws, task, "/bin/sh")  # the agent has connected
    ctl(sandbox, "deny", "ssmmessages:OpenDataChannel", "--principal", "role/no-ssmmessages")
    try:
        with pytest.raises(botocore.exceptions.ClientError) as info:
            aws.ecs.execute_command(cluster=aws.cluster, task=task["taskArn"], command="/bin/sh", interactive=True)
        assert info.value.response["Error"]["Code"] == "TargetNotConnectedException"
    finally:
        ctl(sandbox, "clear")
    execute(aws, task, "/bin/sh")  # allowed again
    aws.ecs.stop_task(cluster=aws.cluster, task=task["taskArn"])


def smux(cmd: int, sid: int, data: bytes = b"") -> bytes:
    return struct.pack("<BBHI", 1, cmd, len(data), sid) + data


class Streams:
    """Splits the gateway's smux byte stream back into frames."""

    def __init__(self, client: Client):
        self.client = client
        self.buffer = b""

    def frame(self) -> tuple[int, int, bytes]:
        while len(self.buffer) < 8 or len(self.buffer) < 8 + struct.unpack("<H", self.buffer[2:4])[0]:
            msg = self.client.next()
            assert msg is not None, "channel closed"
            self.buffer += msg.payload
        _v, cmd, length, sid = struct.unpack("<BBHI", self.buffer[:8])
        data, self.buffer = self.buffer[8 : 8 + length], self.buffer[8 + length :]
        return cmd, sid, data


def target_of(aws, task) -> str:
    return f"ecs:{aws.cluster}_{task['taskArn'].split('/')[-1]}_{task['containers'][0]['runtimeId']}"


def port_session(aws, task, host, port, version="1.2.0.0"):
    out = until_connected(lambda: aws.ssm.start_session(
        Target=target_of(aws, task), DocumentName="AWS-StartPortForwardingSessionToRemoteHost",
        Parameters={"host": [host], "portNumber": [str(port)], "localPortNumber": ["0"]}))
    client = Client(out["StreamUrl"], out["TokenValue"], version=version)
    request = json.loads(client.next().payload)
    action = request["RequestedClientActions"][0]
    assert action["ActionParameters"]["SessionType"] == "Port"
    client.send(f.P_HANDSHAKE_RESPONSE, json.dumps({
        "ClientVersion": version, "Errors": [],
        "ProcessedClientActions": [{"ActionType": "SessionType", "ActionStatus": 1}],
    }).encode())
    return out, client


@pytest.fixture(scope="module")
def database(aws):
    yield from postgres_instance(aws, "gatewaydb", "gw-secret")


SSL_REQUEST = struct.pack(">II", 8, 80877103)


def test_port_forwarding_to_the_database_with_isolated_streams(aws, database):
    task = exec_task(aws)
    session, client = port_session(aws, task, database["Address"], database["Port"])
    assert client.next().payload_type == f.P_HANDSHAKE_COMPLETE
    streams = Streams(client)
    for sid in (3, 5):
        client.send(f.P_OUTPUT, smux(0, sid))
        client.send(f.P_OUTPUT, smux(2, sid, SSL_REQUEST))
    answers = {}
    while len(answers) < 2:
        cmd, sid, data = streams.frame()
        if cmd == 2:
            answers[sid] = data
    assert answers == {3: b"N", 5: b"N"}  # PostgreSQL: "no SSL", on each stream
    client.send(f.P_OUTPUT, smux(1, 3))  # closing one stream leaves the other working:
    body = struct.pack(">I", 196608) + b"user\0app\0database\0postgres\0\0"
    client.send(f.P_OUTPUT, smux(2, 5, struct.pack(">I", len(body) + 4) + body))
    client.send(f.P_OUTPUT, smux(0, 7))  # and new streams still open
    client.send(f.P_OUTPUT, smux(2, 7, SSL_REQUEST))
    answers = {}
    while len(answers) < 2:
        cmd, sid, data = streams.frame()
        if cmd == 2:
            answers[sid] = data
    assert answers[5][:1] == b"R"  # PostgreSQL asks stream 5 to authenticate
    assert answers[7] == b"N"
    aws.ssm.terminate_session(SessionId=session["SessionId"])
    client.drain()
    aws.ecs.stop_task(cluster=aws.cluster, task=task["taskArn"])


def test_unreachable_port_fails_only_its_stream(aws, database):
    task = exec_task(aws)
    session, client = port_session(aws, task, database["Address"], 5999)
    assert client.next().payload_type == f.P_HANDSHAKE_COMPLETE
    client.send(f.P_OUTPUT, smux(0, 3))
    cmd, sid, _ = Streams(client).frame()
    assert (cmd, sid) == (1, 3)  # FIN: refused
    aws.ssm.terminate_session(SessionId=session["SessionId"])
    aws.ecs.stop_task(cluster=aws.cluster, task=task["taskArn"])


def test_start_session_needs_a_connected_target(aws):
    plain = aws.run()
    running, _ = aws.wait_for(plain["taskArn"], "RUNNING")
    for target in (target_of(aws, running), "ecs:no-such-target", "i-0123456789abcdef0"):
        with pytest.raises(botocore.exceptions.ClientError) as info:
            aws.ssm.start_session(Target=target, DocumentName="AWS-StartPortForwardingSession")
        assert info.value.response["Error"] == {"Code": "TargetNotConnected", "Message": f"{target} is not connected."}
    aws.ecs.stop_task(cluster=aws.cluster, task=plain["taskArn"])


def test_frame_codec_matches_the_documented_test_vector():
    vector = bytes.fromhex(
        "00000074" + "696e7075745f73747265616d5f64617461" + "20" * 15
        + "00000001" + "0000015e0baa7884" + "0000000000000001" + "0000000000000000"
        + "08090a0b0c0d0e0f" + "0001020304050607"
        + "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        + "00000001" + "00000003" + "616263"
    )
    msg = f.Message(f.INPUT, 1, 0, uuid.UUID("00010203-0405-0607-0809-0a0b0c0d0e0f"), 1, b"abc", 1503434274948)
    assert f.encode(msg) == vector
    assert f.decode(vector) == msg
    assert hashlib.sha256(b"abc").digest() == vector[80:112]


def test_a_session_in_a_second_container_sees_that_container_s_environment(aws):
    # ECS Exec goes into the container named, with that container's variables; only one
    # container per task runs a process in the sandbox, the others lend it their environment.
    family = "two-containers"
    sidecar = {"name": "sidecar", "image": "jump/jumphost:latest",
               "environment": [{"name": "WHO", "value": "sidecar"}]}
    definition = aws.ecs.describe_task_definition(taskDefinition=aws.register(
        family=family, environment=[{"name": "WHO", "value": "main"}, {"name": "ONLY_MAIN", "value": "1"}],
    ))["taskDefinition"]
    aws.ecs.register_task_definition(
        family=family, requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="256", memory="512",
        containerDefinitions=definition["containerDefinitions"] + [sidecar],
        executionRoleArn=definition["executionRoleArn"], taskRoleArn=definition["taskRoleArn"],
    )
    task = aws.run(family=family, enableExecuteCommand=True)
    running, _ = aws.wait_for(task["taskArn"], "RUNNING")
    with pytest.raises(botocore.exceptions.ClientError) as info:
        execute(aws, running, "sh")
    assert "more than one container" in info.value.response["Error"]["Message"]
    shown = {}
    for name in ("jumphost", "sidecar"):
        session = until_connected(lambda: aws.ecs.execute_command(
            cluster=aws.cluster, task=running["taskArn"], container=name,
            command="sh -c 'echo who=$WHO only=${ONLY_MAIN:-none}'", interactive=True))["session"]
        shown[name] = Client(session["streamUrl"], session["tokenValue"]).drain().decode()
    assert "who=main only=1" in shown["jumphost"], shown
    assert "who=sidecar only=none" in shown["sidecar"], shown
    aws.ecs.stop_task(cluster=aws.cluster, task=running["taskArn"])
