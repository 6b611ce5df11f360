"""The sandbox's private network: one bridge that plays the VPC, one network
namespace per host (task or database), and nothing else.

Every object carries the instance id in its name (bridge ``jsb<id>``, veths
``jsb<id>h<n>``, namespaces ``jsb-<id>-<host>``), and every instance keeps a
directory under /run/jump-sandbox with its pid. That is what makes hygiene
possible: a later start (or ``tests/sandbox/clean``) removes whatever belongs
to an instance whose process is gone, and never touches a live one.

Addresses come only from ranges checked against every address and route on
the machine at start-up, under a machine-wide lock so that two sandboxes
starting at once cannot pick the same range.
"""

import fcntl
import ipaddress
import json
import os
import signal
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path

STATE_ROOT = Path("/run/jump-sandbox")
NETNS_ETC = Path("/etc/netns")
VPC_CANDIDATES = [ipaddress.ip_network(f"10.{n}.0.0/16") for n in range(200, 250)]
PUBLIC_CANDIDATES = [ipaddress.ip_network(f"198.{18 + n // 256}.{n % 256}.0/24") for n in range(1, 512)]


class NetworkError(Exception):
    pass


def ip(*args: str, check: bool = True) -> str:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


@contextmanager
def machine_lock():
    STATE_ROOT.mkdir(parents=True, exist_ok=True)
    with open(STATE_ROOT / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def networks_in_use(ignore_link: str | None = None) -> list:
    """Every IPv4 network the machine has an address in or a route to."""
    used = []
    for link in json.loads(ip("-j", "-4", "addr") or "[]"):
        if link.get("ifname") == ignore_link:
            continue
        for addr in link.get("addr_info", []):
            used.append(ipaddress.ip_network(f"{addr['local']}/{addr['prefixlen']}", strict=False))
    for route in json.loads(ip("-j", "-4", "route", "show", "table", "all") or "[]"):
        dst = route.get("dst", "")
        if dst in ("", "default") or route.get("dev") == ignore_link:
            continue
        try:
            used.append(ipaddress.ip_network(dst if "/" in dst else f"{dst}/32", strict=False))
        except ValueError:
            continue
    return used


def is_free(net, used) -> bool:
    return not any(net.overlaps(other) for other in used)


def pick_free(candidates, used):
    for net in candidates:
        if is_free(net, used):
            return net
    raise NetworkError("no free address range left for the sandbox")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return "jumpsandbox" in Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return False


def kill_namespace_processes(ns: str, sig=signal.SIGKILL) -> None:
    for line in ip("netns", "pids", ns, check=False).split():
        try:
            os.kill(int(line), sig)
        except (ProcessLookupError, ValueError):
            pass


def delete_namespace(ns: str) -> None:
    kill_namespace_processes(ns)
    deadline = time.monotonic() + 2
    while ip("netns", "pids", ns, check=False).strip() and time.monotonic() < deadline:
        time.sleep(0.05)
    ip("netns", "delete", ns, check=False)
    etc = NETNS_ETC / ns
    if etc.exists():
        for child in etc.iterdir():
            child.unlink()
        etc.rmdir()


def remove_instance_objects(instance: str) -> list[str]:
    """Deletes every namespace, link and file an instance made. Returns what it removed."""
    removed = []
    prefix = f"jsb-{instance}-"
    for line in ip("netns", "list", check=False).splitlines():
        name = line.split()[0] if line.strip() else ""
        if name.startswith(prefix):
            delete_namespace(name)
            removed.append(f"netns {name}")
    for link in json.loads(ip("-j", "link") or "[]"):
        name = link.get("ifname", "")
        if name.startswith(f"jsb{instance}"):
            ip("link", "delete", name, check=False)
            removed.append(f"link {name}")
    if NETNS_ETC.exists():
        for etc in NETNS_ETC.glob(f"{prefix}*"):
            for child in etc.iterdir():
                child.unlink()
            etc.rmdir()
    state = STATE_ROOT / instance
    if state.exists():
        subprocess.run(["rm", "-rf", str(state)], check=False)
        removed.append(f"dir {state}")
    return removed


def clean_stale() -> list[str]:
    """Removes what dead sandbox instances left behind; live ones are kept."""
    removed = []
    live = set()
    if STATE_ROOT.exists():
        for entry in STATE_ROOT.iterdir():
            if not entry.is_dir():
                continue
            try:
                pid = int((entry / "pid").read_text())
            except (OSError, ValueError):
                pid = 0
            if pid and _pid_alive(pid):
                live.add(entry.name)
            else:
                removed += remove_instance_objects(entry.name)
    # Objects whose instance directory is gone (a crash mid-cleanup).
    orphans = set()
    for line in ip("netns", "list", check=False).splitlines():
        parts = line.split()[0].split("-") if line.strip() else []
        if len(parts) >= 3 and parts[0] == "jsb":
            orphans.add(parts[1])
    for link in json.loads(ip("-j", "link") or "[]"):
        name = link.get("ifname", "")
        if name.startswith("jsb") and len(name) >= 7:
            orphans.add(name[3:7])
    for instance in orphans - live:
        removed += remove_instance_objects(instance)
    return removed


class Network:
    """The bridge of one sandbox instance and the hosts plugged into it."""

    def __init__(self, instance: str):
        self.instance = instance
        self.bridge = f"jsb{instance}"
        self.state_dir = STATE_ROOT / instance
        self.gateways: dict = {}  # network -> gateway address on the bridge
        self.public_net = None
        self._public_next = 10
        self._counter = 0
        self._lock = threading.Lock()
        self.hosts: dict[str, str] = {}  # hostname -> address, for /etc/hosts

    def create(self, vpc_net) -> None:
        """Creates the bridge and claims the VPC and public ranges (under the machine lock)."""
        ip("link", "add", self.bridge, "type", "bridge")
        ip("link", "set", self.bridge, "up")
        self._attach(vpc_net, networks_in_use(ignore_link=self.bridge))
        self.public_net = pick_free(PUBLIC_CANDIDATES, networks_in_use(ignore_link=self.bridge))
        self._attach(self.public_net, [])

    def _attach(self, net, used) -> str:
        if not is_free(net, used):
            raise NetworkError(
                f"VPC range {net} overlaps an address or route already on this machine; "
                "the sandbox only uses ranges it has checked are free"
            )
        gateway = str(next(net.hosts()))
        ip("addr", "add", f"{gateway}/{net.prefixlen}", "dev", self.bridge)
        self.gateways[net] = gateway
        return gateway

    def ensure_vpc(self, cidr: str) -> str:
        """Attaches another VPC's range to the bridge, if the machine does not use it."""
        net = ipaddress.ip_network(cidr)
        with self._lock:
            if net in self.gateways:
                return self.gateways[net]
            with machine_lock():
                return self._attach(net, networks_in_use(ignore_link=self.bridge))

    def next_public_ip(self) -> str:
        with self._lock:
            addr = self.public_net.network_address + self._public_next
            self._public_next += 1
            return str(addr)

    def add_host(self, name: str, addresses: list[tuple[str, int]], gateway: str, hostname: str) -> str:
        """Makes a namespace holding the given addresses, plugged into the bridge."""
        with self._lock:
            self._counter += 1
            veth = f"{self.bridge}h{self._counter}"
        ns = f"jsb-{self.instance}-{name}"
        ip("netns", "add", ns)
        try:
            ip("link", "add", veth, "type", "veth", "peer", "name", f"{veth}p")
            ip("link", "set", f"{veth}p", "netns", ns)
            ip("-n", ns, "link", "set", f"{veth}p", "name", "eth0")
            for address, prefix in addresses:
                ip("-n", ns, "addr", "add", f"{address}/{prefix}", "dev", "eth0")
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "link", "set", "eth0", "up")
            ip("-n", ns, "route", "add", "default", "via", gateway)
            ip("link", "set", veth, "master", self.bridge)
            ip("link", "set", veth, "up")
            # An address freed by a stopped host may still have a neighbour entry here
            # pointing at that host's MAC: traffic would vanish until it expired.
            for address, _ in addresses:
                ip("neigh", "flush", "to", address, check=False)
            etc = NETNS_ETC / ns
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "hosts").write_text("")
            (etc / "hostname").write_text(hostname + "\n")
            self._write_hosts(ns, hostname, addresses[0][0])
        except Exception:
            delete_namespace(ns)
            ip("link", "delete", veth, check=False)
            raise
        return ns

    def _write_hosts(self, ns: str, hostname: str, address: str) -> None:
        lines = ["127.0.0.1 localhost", f"{address} {hostname}"]
        lines += [f"{addr} {name}" for name, addr in sorted(self.hosts.items())]
        # Rewritten in place: running processes see /etc/hosts through a bind
        # mount of this very inode.
        with open(NETNS_ETC / ns / "hosts", "r+") as handle:
            handle.seek(0)
            handle.truncate()
            handle.write("\n".join(lines) + "\n")

    def publish_name(self, name: str, address: str) -> None:
        """Makes a name (an RDS endpoint) resolvable in every namespace, now and later."""
        with self._lock:
            self.hosts[name] = address
        for etc in NETNS_ETC.glob(f"jsb-{self.instance}-*"):
            hostname = (etc / "hostname").read_text().strip()
            own = ip("-n", etc.name, "-j", "-4", "addr", "show", "eth0", check=False)
            try:
                address_of = json.loads(own)[0]["addr_info"][0]["local"]
            except (ValueError, IndexError, KeyError):
                continue
            self._write_hosts(etc.name, hostname, address_of)

    def remove_host(self, ns: str) -> None:
        delete_namespace(ns)

    def destroy(self) -> None:
        remove_instance_objects(self.instance)
