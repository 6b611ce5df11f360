"""Security groups hold on the sandbox's bridge as they do in a VPC (firewall.py)."""

import socket

import pytest

from conftest import private_ip, ssh


def reachable(address: str, port: int) -> bool:
    """Whether a TCP connection from this machine (the bridge's side) gets through."""
    try:
        socket.create_connection((address, port), timeout=1.5).close()
        return True
    except OSError:
        return False


def dials(key, known_hosts, host: str, address: str, port: int) -> bool:
    """Whether a connection from inside the jumphost at HOST to ADDRESS:PORT gets through."""
    out = ssh(key, known_hosts, host, f"timeout 3 bash -c 'exec 3<>/dev/tcp/{address}/{port}'")
    return out.returncode == 0


@pytest.fixture
def group(aws, request):
    """A fresh group in the sandbox's VPC, with AWS's defaults: no inbound rule, all outbound."""
    vpc = aws.ec2.describe_security_groups(GroupIds=aws.groups[:1])["SecurityGroups"][0]["VpcId"]
    cidr = aws.ec2.describe_vpcs(VpcIds=[vpc])["Vpcs"][0]["CidrBlock"]
    gid = aws.ec2.create_security_group(GroupName=request.node.name[:60], Description="test", VpcId=vpc)["GroupId"]
    return gid, cidr


def ssh_rule(cidr: str) -> list:
    return [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": cidr}]}]


def test_ssh_is_dropped_until_the_jumphosts_group_allows_it_and_again_once_revoked(aws, keypair, tmp_path, group):
    key, public = keypair
    gid, cidr = group
    known_hosts = tmp_path / "known_hosts"
    task, host = aws.ssh_task(public, known_hosts, networkConfiguration={"awsvpcConfiguration": {
        "subnets": aws.subnets, "securityGroups": [gid]}})
    assert not reachable(host, 22), "a group with no inbound rule let ssh in"

    aws.ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=ssh_rule(cidr))
    assert reachable(host, 22), "the new rule did not reach the running task"
    out = ssh(key, known_hosts, host, "echo in")
    assert out.returncode == 0 and out.stdout.strip() == "in", out.stderr

    aws.ec2.revoke_security_group_ingress(GroupId=gid, IpPermissions=ssh_rule(cidr))
    assert not reachable(host, 22), "a revoked rule still let ssh in"
    aws.ecs.stop_task(cluster=aws.cluster, task=task["taskArn"])


def test_a_database_admits_only_the_groups_its_rules_name_and_egress_rules_hold_too(aws, keypair, tmp_path, group):
    key, public = keypair
    gid, cidr = group
    aws.ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=ssh_rule(cidr))
    db_group = aws.database_group("sgdb-db")
    aws.rds.create_db_instance(
        DBInstanceIdentifier="sgdb", Engine="postgres", DBInstanceClass="db.t3.micro",
        MasterUsername="app", MasterUserPassword="sg-secret", AllocatedStorage=20, VpcSecurityGroupIds=[db_group],
    )
    db = aws.rds.describe_db_instances(DBInstanceIdentifier="sgdb")["DBInstances"][0]["Endpoint"]["Address"]
    try:
        assert not reachable(db, 5432), "the database let in an address its group does not name"

        admitted, admitted_host = aws.ssh_task(public, tmp_path / "admitted_hosts")
        other, other_host = aws.ssh_task(public, tmp_path / "other_hosts", networkConfiguration={
            "awsvpcConfiguration": {"subnets": aws.subnets, "securityGroups": [gid]}})
        assert dials(key, tmp_path / "admitted_hosts", admitted_host, db, 5432), "the named group was refused"
        assert not dials(key, tmp_path / "other_hosts", other_host, db, 5432), "another group got in"

        # The database's group learns the other group: its members get in at once.
        aws.ec2.authorize_security_group_ingress(GroupId=db_group, IpPermissions=[{
            "IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "UserIdGroupPairs": [{"GroupId": gid}]}])
        assert dials(key, tmp_path / "other_hosts", other_host, db, 5432)

        # Outbound rules bind the task's side: with none, nothing leaves; one for 5432 lets that out.
        everything = [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
        aws.ec2.revoke_security_group_egress(GroupId=gid, IpPermissions=everything)
        assert not dials(key, tmp_path / "other_hosts", other_host, db, 5432), "a group with no egress rule dialled out"
        aws.ec2.authorize_security_group_egress(GroupId=gid, IpPermissions=[{
            "IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "IpRanges": [{"CidrIp": cidr}]}])
        assert dials(key, tmp_path / "other_hosts", other_host, db, 5432)
        for task in (admitted, other):
            aws.ecs.stop_task(cluster=aws.cluster, task=task["taskArn"])
    finally:
        aws.rds.delete_db_instance(DBInstanceIdentifier="sgdb", SkipFinalSnapshot=True)


def test_a_task_in_no_group_of_its_own_gets_its_vpcs_default_group(aws):
    task = aws.run(networkConfiguration={"awsvpcConfiguration": {"subnets": aws.subnets}},
                   env={"JUMP_AUTHORIZED_KEYS": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeFakeFakeFakeFakeFakeFakeFakeFakeFake x"})
    running, _ = aws.wait_for(task["taskArn"], "RUNNING")
    eni = {d["name"]: d["value"] for d in running["attachments"][0]["details"]}["networkInterfaceId"]
    groups = aws.ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"][0]["Groups"]
    assert [g["GroupName"] for g in groups] == ["default"]
    assert not reachable(private_ip(running), 22), "the default group let the bridge in"
    aws.ecs.stop_task(cluster=aws.cluster, task=task["taskArn"])


def test_a_group_of_another_vpc_is_refused_before_anything_starts(aws):
    other = aws.ec2.create_vpc(CidrBlock="10.197.0.0/16")["Vpc"]["VpcId"]
    foreign = aws.ec2.create_security_group(GroupName="elsewhere", Description="test", VpcId=other)["GroupId"]
    before = aws.ecs.list_tasks(cluster=aws.cluster, desiredStatus="RUNNING")["taskArns"]
    with pytest.raises(aws.ecs.exceptions.InvalidParameterException, match="belong to different networks"):
        aws.run(networkConfiguration={"awsvpcConfiguration": {"subnets": aws.subnets, "securityGroups": [foreign]}})
    assert aws.ecs.list_tasks(cluster=aws.cluster, desiredStatus="RUNNING")["taskArns"] == before
