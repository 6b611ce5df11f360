"""Security groups on the data plane: each host admits only what its groups allow.

In a VPC a task's network interface carries security groups, and a packet that
no rule of theirs allows is dropped: a jumphost whose group has no inbound rule
for port 22 cannot be reached by ssh from anywhere, however the routes look. A
sandbox bridge that let every host talk to every other hid the commonest
"it works in the sandbox, times out in AWS" failure there is, and let jump's
own `ssh_via = "ssm"` path pass untested against the one setup it exists for.

So every host namespace (task or database) gets an iptables filter of its own,
rendered from moto's EC2 state the way AWS evaluates groups:
- nothing in or out unless a rule of one of the host's groups allows it;
- stateful: the answers of an allowed connection pass both ways;
- a rule names a protocol (`-1` for all, tcp, udp, icmp or a number), a port
  range, and a source (inbound) or destination (outbound): an IPv4 CIDR, or a
  security group, meaning the addresses of every host that carries that group;
- loopback is always open (ECS Exec port sessions to the task itself arrive on
  127.0.0.1, as the agent dials them inside the task);
- dropped, not refused: a blocked connection times out, as in AWS.

Rules follow the groups as they change: after any EC2 call that can change a
rule or a membership, every host whose filter reads differently is rewritten
(atomically, with iptables-restore). Prefix lists and IPv6 ranges allow nothing
here: the sandbox has neither. The filters live inside the namespaces, so they
go with them and nothing on the machine outside the sandbox changes.
"""

import subprocess
import threading
from dataclasses import dataclass

from moto.core import DEFAULT_ACCOUNT_ID
from moto.ec2.models import ec2_backends

# EC2 actions after which the filters are read again.
CHANGING_ACTIONS = frozenset(
    {
        "AuthorizeSecurityGroupIngress",
        "AuthorizeSecurityGroupEgress",
        "RevokeSecurityGroupIngress",
        "RevokeSecurityGroupEgress",
        "ModifySecurityGroupRules",
        "UpdateSecurityGroupRuleDescriptionsIngress",
        "UpdateSecurityGroupRuleDescriptionsEgress",
        "DeleteSecurityGroup",
        "ModifyNetworkInterfaceAttribute",
    }
)


class FirewallError(Exception):
    pass


@dataclass
class Host:
    region: str
    addresses: list[str]
    groups: list[str]
    rendered: str = ""


class Firewall:
    """The filters of every host of one sandbox instance."""

    def __init__(self):
        self.hosts: dict[str, Host] = {}  # namespace -> host
        self._lock = threading.Lock()

    def admit(self, ns: str, region: str, addresses: list[str], groups: list[str]) -> None:
        """Puts NS behind GROUPS; hosts whose rules name those groups learn its addresses."""
        with self._lock:
            self.hosts[ns] = Host(region, list(addresses), list(groups))
            self._apply()

    def forget(self, ns: str) -> None:
        with self._lock:
            if self.hosts.pop(ns, None) is not None:
                self._apply()

    def refresh(self) -> None:
        """Reads every group again (after a call that may have changed one)."""
        with self._lock:
            self._apply()

    def _apply(self) -> None:
        for ns, host in list(self.hosts.items()):
            text = self._render(host)
            if text == host.rendered:
                continue
            proc = subprocess.run(
                ["ip", "netns", "exec", ns, "iptables-restore"], input=text, capture_output=True, text=True
            )
            if proc.returncode != 0:
                if ns not in self.hosts:
                    continue
                raise FirewallError(f"iptables-restore in {ns}: {proc.stderr.strip()}")
            host.rendered = text

    def members(self, region: str, group: str) -> list[str]:
        return [a for h in self.hosts.values() if h.region == region and group in h.groups for a in h.addresses]

    def _render(self, host: Host) -> str:
        ec2 = ec2_backends[DEFAULT_ACCOUNT_ID][host.region]
        inbound, outbound = [], []
        for gid in host.groups:
            group = ec2.get_security_group_from_id(gid)
            if group is None:  # deleted under a live interface: it allows nothing
                continue
            for rule in group.ingress_rules:
                inbound += _lines("INPUT", "-s", rule, self._peers(host.region, rule))
            for rule in group.egress_rules:
                outbound += _lines("OUTPUT", "-d", rule, self._peers(host.region, rule))
        return "\n".join(
            [
                "*filter",
                ":INPUT DROP [0:0]",
                ":FORWARD DROP [0:0]",
                ":OUTPUT DROP [0:0]",
                "-A INPUT -i lo -j ACCEPT",
                "-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
                *inbound,
                "-A OUTPUT -o lo -j ACCEPT",
                "-A OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
                *outbound,
                "COMMIT",
                "",
            ]
        )

    def _peers(self, region: str, rule) -> list[str]:
        """The addresses a rule admits: its IPv4 CIDR, or every member of its group."""
        if rule.ip_range.get("CidrIp"):
            return [rule.ip_range["CidrIp"]]
        group = (rule.source_group or {}).get("GroupId")
        if group:
            return [f"{address}/32" for address in self.members(region, group)]
        return []


def _lines(chain: str, side: str, rule, peers: list[str]) -> list[str]:
    protocol = rule.ip_protocol or "-1"
    match = [] if protocol == "-1" else ["-p", protocol]
    if protocol in ("tcp", "udp") and rule.from_port is not None:
        low, high = rule.from_port, rule.to_port
        match += ["--dport", f"{low}" if low == high else f"{low}:{high}"]
    if protocol == "icmp" and rule.from_port not in (None, -1):
        match += ["--icmp-type", f"{rule.from_port}" + ("" if rule.to_port in (None, -1) else f"/{rule.to_port}")]
    return [" ".join(["-A", chain, side, peer, *match, "-j", "ACCEPT"]) for peer in peers]
