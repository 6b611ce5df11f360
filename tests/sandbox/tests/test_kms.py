"""KMS-encrypted ECS Exec sessions: the gateway's side of the handshake and the cipher.

The client half is written here from the protocol notes (GenerateDataKey
against the sandbox's KMS, the challenge, AES-256-GCM with the key's halves),
so that a gateway that skips or bends a step fails these tests.
"""

import base64
import json
import os
import time

import boto3
import pytest
from conftest import ctl
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from jumpsandbox import ssmframe as f
from test_gateway import Client, exec_role, until_connected

KMS_CLUSTER = "jump-kms"
TASK_ROLE = "arn:aws:iam::123456789012:role/jump-kms-task"


@pytest.fixture(scope="module")
def kms(aws):
    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test",
                                    region_name=aws.env["AWS_REGION"])
    return session.client("kms", endpoint_url=aws.env["AWS_ENDPOINT_URL"])


@pytest.fixture(scope="module")
def key_arn(aws, kms):
    """A cluster whose exec sessions are encrypted with a fresh KMS key (named by ARN, as consoles do)."""
    arn = kms.create_key(Description="jump exec sessions")["KeyMetadata"]["Arn"]
    aws.ecs.create_cluster(clusterName=KMS_CLUSTER, configuration={
        "executeCommandConfiguration": {"kmsKeyId": arn, "logging": "DEFAULT"},
    })
    assert exec_role(aws, TASK_ROLE.split("/")[-1], "kms:Decrypt") == TASK_ROLE
    aws.ecs.register_task_definition(
        family="kmsrole", requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="256", memory="512",
        taskRoleArn=TASK_ROLE, containerDefinitions=[{"name": "jumphost", "image": "jump/jumphost:latest"}],
    )
    return arn


@pytest.fixture
def kms_task(aws, key_arn):
    """A running exec-enabled task, with the task role, on the KMS cluster."""
    arn = aws.run(family="kmsrole", cluster=KMS_CLUSTER, enableExecuteCommand=True)["taskArn"]
    deadline = time.monotonic() + 30
    while (task := aws.ecs.describe_tasks(cluster=KMS_CLUSTER, tasks=[arn])["tasks"][0])["lastStatus"] != "RUNNING":
        assert time.monotonic() < deadline, task["lastStatus"]
        time.sleep(0.05)
    yield task
    aws.ecs.stop_task(cluster=KMS_CLUSTER, task=arn)


class Sealed:
    """The client's cipher: opens with the data key's first half, seals with its second."""

    def __init__(self, data_key: bytes):
        self.opening = AESGCM(data_key[:32])
        self.sealing = AESGCM(data_key[32:])

    def open(self, payload: bytes) -> bytes:
        return self.opening.decrypt(payload[:12], payload[12:], None)

    def seal(self, data: bytes, key: AESGCM | None = None) -> bytes:
        nonce = os.urandom(12)
        return nonce + (key or self.sealing).encrypt(nonce, data, None)


def start(aws, task, command) -> tuple[dict, str, Client]:
    session = until_connected(lambda: aws.ecs.execute_command(
        cluster=KMS_CLUSTER, task=task["taskArn"], command=command, interactive=True))
    target = f"ecs:{KMS_CLUSTER}_{task['taskArn'].split('/')[-1]}_{task['containers'][0]['runtimeId']}"
    return session, target, Client(session["session"]["streamUrl"], session["session"]["tokenValue"])


def handshake_request(client: Client) -> dict:
    msg = client.next()
    assert msg is not None, client.closed
    assert msg.payload_type == f.P_HANDSHAKE_REQUEST
    return json.loads(msg.payload)


def answer(client: Client, *actions: dict) -> None:
    client.send(f.P_HANDSHAKE_RESPONSE, json.dumps(
        {"ClientVersion": "1.2.0.0", "ProcessedClientActions": list(actions), "Errors": []}).encode())


def session_type_done() -> dict:
    return {"ActionType": "SessionType", "ActionStatus": 1, "ActionResult": None, "Error": ""}


def send_data_key(client: Client, kms, session_id: str, target: str, key_id: str) -> bytes:
    """Generates the 64-byte data key the agent asked for and hands it over, as the plugin does."""
    key = kms.generate_data_key(KeyId=key_id, NumberOfBytes=64,
                                EncryptionContext={"aws:ssm:SessionId": session_id, "aws:ssm:TargetId": target})
    answer(client, session_type_done(), {
        "ActionType": "KMSEncryption", "ActionStatus": 1, "Error": "",
        "ActionResult": {"KMSCipherTextKey": base64.b64encode(key["CiphertextBlob"]).decode()},
    })
    return key["Plaintext"]


def challenge(client: Client) -> bytes:
    msg = client.next()
    assert msg is not None, client.closed
    assert msg.payload_type == f.P_ENC_CHALLENGE_REQUEST
    return base64.b64decode(json.loads(msg.payload)["Challenge"])


def reply(client: Client, sealed: bytes) -> None:
    client.send(f.P_ENC_CHALLENGE_RESPONSE, json.dumps({"Challenge": base64.b64encode(sealed).decode()}).encode())


def open_encrypted(aws, kms, task, command) -> tuple[Client, Sealed]:
    """A session on the KMS cluster, through the whole handshake."""
    session, target, client = start(aws, task, command)
    request = handshake_request(client)
    key_id = {a["ActionType"]: a["ActionParameters"] for a in request["RequestedClientActions"]}["KMSEncryption"]["KMSKeyId"]
    cipher = Sealed(send_data_key(client, kms, session["session"]["sessionId"], target, key_id))
    reply(client, cipher.seal(cipher.open(challenge(client))))
    complete = client.next()
    assert complete.payload_type == f.P_HANDSHAKE_COMPLETE, client.closed
    assert json.loads(complete.payload)["CustomerMessage"] == "This session is encrypted using AWS KMS."
    return client, cipher


def read_sealed(client: Client, cipher: Sealed, needle: bytes | None = None) -> tuple[bytes, bytes]:
    """Output until NEEDLE (or the end): the payloads as they were on the wire, and decrypted."""
    raw = clear = b""
    while needle is None or needle not in clear:
        msg = client.next()
        if msg is None:
            assert needle is None, f"closed before {needle!r}: {client.closed}; got {clear!r}"
            break
        assert msg.payload_type == f.P_OUTPUT
        plain = cipher.open(msg.payload)
        assert len(msg.payload) == 12 + len(plain) + 16  # nonce || ciphertext || tag, per message
        raw, clear = raw + msg.payload, clear + plain
    return raw, clear


def test_handshake_then_sealed_output_and_input(aws, kms, key_arn, kms_task):
    session, target, client = start(aws, kms_task, "/bin/sh")
    request = handshake_request(client)
    assert request["AgentVersion"]
    assert request["RequestedClientActions"] == [
        {"ActionType": "SessionType", "ActionParameters": {"SessionType": "InteractiveCommands", "Properties": None}},
        {"ActionType": "KMSEncryption", "ActionParameters": {"KMSKeyId": key_arn}},
    ]
    cipher = Sealed(send_data_key(client, kms, session["session"]["sessionId"], target, key_arn))
    reply(client, cipher.seal(cipher.open(challenge(client))))
    complete = json.loads(client.next().payload)
    assert complete["HandshakeTimeToComplete"] > 0
    client.send(f.P_SIZE, json.dumps({"cols": 100, "rows": 30}).encode())  # sizes stay clear
    client.send(f.P_OUTPUT, cipher.seal(b"echo kms-$((6*7))-ok; stty size\n"))
    raw, clear = read_sealed(client, cipher, b"30 100")
    assert b"kms-42-ok" in clear  # typed input, decrypted by the agent, ran in the shell
    assert b"kms-" not in raw and b"30 100" not in raw
    client.send(f.P_OUTPUT, cipher.seal(b"exit\n"))
    read_sealed(client, cipher)
    assert client.closed == ""


@pytest.mark.parametrize("command", ["echo hello-sealed", "sh -c 'echo hello-sealed; exit 3'"])
def test_command_output_is_sealed(aws, kms, kms_task, command):
    client, cipher = open_encrypted(aws, kms, kms_task, command)
    raw, clear = read_sealed(client, cipher)
    assert b"hello-sealed" in clear and b"hello" not in raw
    assert client.closed == ""


def test_faulty_channel_with_encryption(sandbox, aws, kms, kms_task):
    ctl(sandbox, "gateway-fault", "--drop", "0.1", "--duplicate", "0.1", "--delay", "0.1", "--delay-ms", "30")
    try:
        client, cipher = open_encrypted(aws, kms, kms_task, "sh -c 'seq 1 20000; echo END'")
        _, clear = read_sealed(client, cipher)
    finally:
        ctl(sandbox, "clear")
    lines = clear.replace(b"\r\n", b"\n").split(b"\n")
    assert lines[:-2] == [str(n).encode() for n in range(1, 20001)] and lines[-2] == b"END"
    assert len(client.received) > len(set(client.received)) or client.received != sorted(client.received)


def test_client_without_kms_support_gets_no_shell(aws, kms_task):
    _, _, client = start(aws, kms_task, "echo should-not-run")
    handshake_request(client)
    answer(client, session_type_done(), {"ActionType": "KMSEncryption", "ActionStatus": 3, "ActionResult": None,
                                         "Error": "this client does not do KMSEncryption"})
    assert client.drain() == b""
    assert "KMSEncryption failed on client with status 3" in client.closed
    assert "this client does not do KMSEncryption" in client.closed


@pytest.mark.parametrize("wrong", ["agent half", "other bytes"])
def test_wrong_challenge_answer_gets_no_shell(aws, kms, kms_task, key_arn, wrong):
    session, target, client = start(aws, kms_task, "echo should-not-run")
    handshake_request(client)
    cipher = Sealed(send_data_key(client, kms, session["session"]["sessionId"], target, key_arn))
    plain = cipher.open(challenge(client))
    if wrong == "agent half":  # the right bytes, sealed with the half only the agent seals with
        reply(client, cipher.seal(plain, key=cipher.opening))
    else:
        reply(client, cipher.seal(bytes(64)))
    assert client.drain() == b""
    assert "challenge" in client.closed.lower()


def test_data_key_for_another_session_is_refused(aws, kms, kms_task, key_arn):
    session, target, client = start(aws, kms_task, "echo should-not-run")
    handshake_request(client)
    send_data_key(client, kms, "some-other-session", target, key_arn)  # wrong encryption context
    assert client.drain() == b""
    assert "Fetching data key failed" in client.closed and "InvalidCiphertextException" in client.closed


def test_task_role_needs_kms_decrypt(sandbox, aws, kms, kms_task, key_arn):
    ctl(sandbox, "deny", "kms:Decrypt", "--principal", TASK_ROLE)
    try:
        session, target, client = start(aws, kms_task, "echo should-not-run")
        handshake_request(client)
        send_data_key(client, kms, session["session"]["sessionId"], target, key_arn)
        assert client.drain() == b""
    finally:
        ctl(sandbox, "clear")
    assert "AccessDeniedException" in client.closed and "kms:Decrypt" in client.closed
    assert "role/jump-kms-task" in client.closed
    client, cipher = open_encrypted(aws, kms, kms_task, "echo allowed-again")  # allowed: works
    assert b"allowed-again" in read_sealed(client, cipher)[1]


def test_undecryptable_input_ends_the_session(aws, kms, kms_task):
    client, cipher = open_encrypted(aws, kms, kms_task, "/bin/sh")
    client.send(f.P_OUTPUT, b"echo sent-in-clear\n")
    _, clear = read_sealed(client, cipher)
    assert b"sent-in-clear" not in clear
    assert "Error decrypting stream data message" in client.closed


def test_port_sessions_and_plain_clusters_are_not_encrypted(aws, kms_task):
    target = f"ecs:{KMS_CLUSTER}_{kms_task['taskArn'].split('/')[-1]}_{kms_task['containers'][0]['runtimeId']}"
    out = until_connected(lambda: aws.ssm.start_session(
        Target=target, DocumentName="AWS-StartPortForwardingSession",
        Parameters={"portNumber": ["22"], "localPortNumber": ["0"]}))
    client = Client(out["StreamUrl"], out["TokenValue"])
    actions = [a["ActionType"] for a in handshake_request(client)["RequestedClientActions"]]
    assert actions == ["SessionType"]
    aws.ssm.terminate_session(SessionId=out["SessionId"])
    plain = aws.run(enableExecuteCommand=True)  # the default cluster has no key
    task, _ = aws.wait_for(plain["taskArn"], "RUNNING")
    session = until_connected(lambda: aws.ecs.execute_command(
        cluster=aws.cluster, task=task["taskArn"], command="sh -c 'echo plain-$((1+1))'", interactive=True))["session"]
    client = Client(session["streamUrl"], session["tokenValue"])
    first = client.next()
    assert first.payload_type == f.P_OUTPUT
    assert b"plain-2" in first.payload + client.drain()
    aws.ecs.stop_task(cluster=aws.cluster, task=task["taskArn"])
