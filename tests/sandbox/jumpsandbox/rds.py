"""Real PostgreSQL servers behind moto's RDS instances.

The most common reason to open a tunnel into a VPC is a private database, so
an RDS instance created in the sandbox is a real PostgreSQL in a namespace of
its own on the VPC bridge, reachable only from what its VPC security groups
admit (firewall.py; without any, its VPC's default group), with the
instance's master user, password and database. Its endpoint name resolves
in every task namespace. The server is up before CreateDBInstance returns, so
"available" in moto is true.
"""

import glob
import ipaddress
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from moto.core import DEFAULT_ACCOUNT_ID
from moto.ec2.models import ec2_backends
from moto.rds.models import rds_backends

POSTGRES_ENGINES = ("postgres", "aurora-postgresql")


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError("PostgreSQL server binaries not found; run tests/sandbox/setup")
    return found[-1]


class Databases:
    def __init__(self, network, firewall, state_dir: Path, address_pool):
        self.network = network
        self.firewall = firewall
        self.state_dir = state_dir
        self.next_address = address_pool  # callable returning (ip, prefix, gateway)
        self.servers: dict[str, tuple[subprocess.Popen, str]] = {}
        self.lock = threading.Lock()

    def created(self, region: str, identifier: str) -> None:
        backend = rds_backends[DEFAULT_ACCOUNT_ID][region]
        db = backend.databases.get(identifier)
        if db is None or db.engine not in POSTGRES_ENGINES:
            return
        address, prefix, gateway = self.next_address()
        ns = self.network.add_host(f"rds-{identifier}"[:40], [(address, prefix)], gateway, identifier)
        try:
            self.firewall.admit(ns, region, [address], _groups(region, db, address))
            proc = self._serve(ns, db, address)
        except Exception:
            # No half-made database: the instance disappears with its server.
            self.firewall.forget(ns)
            self.network.remove_host(ns)
            backend.databases.pop(identifier, None)
            raise
        self.network.publish_name(db.address, address)
        with self.lock:
            self.servers[identifier] = (proc, ns)

    def _serve(self, ns: str, db, address: str) -> subprocess.Popen:
        identifier = db.db_instance_identifier
        data = self.state_dir / "rds" / identifier
        if data.exists():
            shutil.rmtree(data)
        data.mkdir(parents=True)
        shutil.chown(data.parent, "postgres", "postgres")
        shutil.chown(data, "postgres", "postgres")
        user = db.master_username or "postgres"
        # moto refuses to read the password back through its public property.
        password = getattr(db, "_master_user_password", "") or ""
        pwfile = data.parent / f"{identifier}.pw"
        pwfile.write_text(password + "\n")
        shutil.chown(pwfile, "postgres", "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
        subprocess.run(
            [*as_postgres, _pg_bin("initdb"), "-D", str(data), "-U", user, f"--pwfile={pwfile}",
             "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync", "-E", "UTF8"],
            check=True, capture_output=True,
        )
        pwfile.unlink()
        with open(data / "pg_hba.conf", "a") as hba:
            hba.write("host all all 0.0.0.0/0 scram-sha-256\n")
        with open(self.state_dir / "rds" / f"{identifier}.log", "ab") as log:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", ns, *as_postgres, _pg_bin("postgres"), "-D", str(data),
                 "-c", f"listen_addresses={address}", "-c", f"port={db.port}",
                 "-c", f"unix_socket_directories={data}", "-c", "fsync=off"],
                stdout=log, stderr=log, start_new_session=True,
            )
        self._wait_ready(ns, data, db.port, user)
        if db.db_name and db.db_name != "postgres":
            subprocess.run(
                ["ip", "netns", "exec", ns, *as_postgres, "psql", "-h", str(data), "-p", str(db.port), "-U", user,
                 "-d", "postgres", "-c", f'CREATE DATABASE "{db.db_name}"'],
                check=True, capture_output=True,
            )
        return proc

    def _wait_ready(self, ns: str, data: Path, port: int, user: str) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            probe = subprocess.run(
                ["ip", "netns", "exec", ns, _pg_bin("pg_isready"), "-h", str(data), "-p", str(port), "-U", user],
                capture_output=True,
            )
            if probe.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"PostgreSQL in {ns} did not become ready")

    def deleted(self, identifier: str) -> None:
        with self.lock:
            entry = self.servers.pop(identifier, None)
        if entry:
            proc, ns = entry
            # SIGINT is PostgreSQL's fast shutdown: it does not wait for clients.
            try:
                os.killpg(proc.pid, signal.SIGINT)
                proc.wait(5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
            self.firewall.forget(ns)
            self.network.remove_host(ns)

    def stop_all(self) -> None:
        for identifier in list(self.servers):
            self.deleted(identifier)


def _groups(region: str, db, address: str) -> list[str]:
    """The instance's VPC security groups; without any, AWS gives it its VPC's default group."""
    if db.vpc_security_group_ids:
        return list(db.vpc_security_group_ids)
    ec2 = ec2_backends[DEFAULT_ACCOUNT_ID][region]
    for vpc in ec2.vpcs.values():
        if ipaddress.ip_address(address) in ipaddress.ip_network(vpc.cidr_block):
            default = ec2.get_security_group_from_name("default", vpc_id=vpc.id)
            return [default.id] if default else []
    return []
