"""A Patroni-managed PostgreSQL 15 cluster on loopback, for the tests, the failover benchmark and local trials.

One etcd (Debian's etcd-server) and two or three Patroni 4 nodes (PyPI, in var/tools/patroni, built with a
Python the postgres OS user can run), each on free ports, in a temporary folder owned by postgres. `cluster()`
waits until one node leads and the others stream (with synchronous mode, until a member is `sync_standby` in
Patroni's /cluster, which is when etcd has confirmed it) and always tears everything down, also after a failed
test.

By hand: `make patroni-cluster` (or `.venv/bin/python bench/patroni.py [--nodes 3] [--async]`, which calls
`main()` here) starts one, prints its DATABASE_URL and DBOPS_PATRONI_URLS, and keeps it until Ctrl-C.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT_DIR / "apps"))

from dbops.localdb import SERVER_USER, find_bindir, free_port  # noqa: E402 - after the path set-up

PATRONI = PROJECT_DIR / "var" / "tools" / "patroni" / "bin" / "patroni"
PATRONICTL = PATRONI.with_name("patronictl")
SCOPE = "dbops"
TTL, LOOP_WAIT, RETRY_TIMEOUT = 20, 1, 3  # Patroni 4's smallest allowed values


class PatroniUnavailable(RuntimeError):
    """Patroni or etcd is not installed here (make patroni installs them)."""


def available() -> str:
    """Return "" when the cluster can run here, else why not."""
    if not PATRONI.exists():
        return "Patroni is not installed (make patroni builds var/tools/patroni)"
    if shutil.which("etcd") is None:
        return "etcd is not installed (make patroni installs Debian's etcd-server)"
    return ""


@dataclasses.dataclass
class Node:
    name: str
    pg_port: int
    api_port: int
    config: Path
    process: subprocess.Popen | None = None

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"


@dataclasses.dataclass
class PatroniCluster:
    root: Path
    nodes: list[Node]
    etcd_port: int
    password: str
    synchronous: bool
    etcd: subprocess.Popen | None = None

    # -- addresses ----------------------------------------------------------------------------------------------
    def url(self, dbname: str = "postgres", **query: str) -> str:
        """Return a multi-host URL over every node, read-write: libpq finds the leader."""
        hosts = ",".join(f"127.0.0.1:{n.pg_port}" for n in self.nodes)
        params = "&".join(f"{k}={v}" for k, v in {"target_session_attrs": "read-write", **query}.items())
        return f"postgres://postgres:{self.password}@{hosts}/{dbname}?{params}"

    def node_url(self, node: Node, dbname: str = "postgres") -> str:
        return f"postgres://postgres:{self.password}@127.0.0.1:{node.pg_port}/{dbname}"

    @property
    def api_urls(self) -> str:
        return ",".join(n.api for n in self.nodes)

    # -- Patroni's view ----------------------------------------------------------------------------------------
    def members(self) -> list[dict]:
        """Return /cluster's members from the first node that answers ([] when none does)."""
        for node in self.nodes:
            with (
                contextlib.suppress(OSError, ValueError),
                urllib.request.urlopen(node.api + "/cluster", timeout=2) as response,  # noqa: S310 - loopback
            ):
                return json.loads(response.read())["members"]
        return []

    def leader(self) -> Node | None:
        for member in self.members():
            if member.get("role") == "leader" and member.get("state") == "running":
                return next(n for n in self.nodes if n.name == member["name"])
        return None

    def healthy(self, *, exclude: Node | None = None) -> bool:
        """Tell whether a leader runs, the other live members stream, and (synchronous) a sync standby is confirmed."""
        members = [m for m in self.members() if exclude is None or m["name"] != exclude.name]
        roles = {m.get("role") for m in members}
        if "leader" not in roles:
            return False
        replicas = [m for m in members if m.get("role") != "leader"]
        if not replicas or any(m.get("state") != "streaming" for m in replicas):
            return False
        return not self.synchronous or "sync_standby" in roles

    def wait_healthy(self, timeout: float = 90.0, *, exclude: Node | None = None) -> Node:
        deadline = time.monotonic() + timeout
        while not self.healthy(exclude=exclude):
            if time.monotonic() > deadline:
                raise RuntimeError(f"Patroni cluster not healthy in {timeout:.0f} s: {self.members()}")
            time.sleep(0.2)
        return self.leader()

    # -- faults --------------------------------------------------------------------------------------------------
    def postmaster_pid(self, node: Node) -> int | None:
        pid_file = self.root / node.name / "data" / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int(pid_file.read_text().splitlines()[0])
        return None

    def kill(self, node: Node) -> None:
        """Node loss: SIGKILL its Patroni and its postmaster (the backends die with it)."""
        for pid in (node.process.pid if node.process else None, self.postmaster_pid(node)):
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if node.process:
            node.process.wait(timeout=30)

    def freeze(self, node: Node, *, frozen: bool = True) -> None:
        """SIGSTOP (or SIGCONT) the node's Patroni and every process of its PostgreSQL: sockets stay open."""
        sig = signal.SIGSTOP if frozen else signal.SIGCONT
        pids = [node.process.pid] if node.process else []
        postmaster = self.postmaster_pid(node)
        if postmaster:
            children = subprocess.run(
                ["pgrep", "-P", str(postmaster)], capture_output=True, text=True, check=False
            ).stdout.split()
            pids += [postmaster, *map(int, children)]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def switchover(self, candidate: Node) -> None:
        leader = self.leader()
        subprocess.run(  # noqa: S603 - our patronictl, fixed arguments
            [str(PATRONICTL), "-c", str(self.nodes[0].config), "switchover", SCOPE, "--leader", leader.name,
             "--candidate", candidate.name, "--force"],
            check=True, capture_output=True, text=True, timeout=120, **_as_server_user(),
        )  # fmt: skip

    def start_node(self, node: Node) -> None:
        node.process = subprocess.Popen(  # noqa: S603 - our Patroni, our config
            [str(PATRONI), str(node.config)],
            stdout=(self.root / f"{node.name}.log").open("ab"),
            stderr=subprocess.STDOUT,
            **_as_server_user(),
        )

    def stop(self) -> None:
        for node in self.nodes:
            self.freeze(node, frozen=False)  # a frozen node would ignore SIGTERM
            if node.process and node.process.poll() is None:
                node.process.terminate()
        for node in self.nodes:
            if node.process:
                try:
                    node.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    node.process.kill()
            pid = self.postmaster_pid(node)
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if self.etcd and self.etcd.poll() is None:
            self.etcd.terminate()
            self.etcd.wait(timeout=30)


def _is_root() -> bool:
    return os.geteuid() == 0


def _as_server_user() -> dict:
    """Popen arguments that run the child as the postgres OS user when we are root (its pid is the child's own)."""
    if not _is_root():
        return {}
    entry = pwd.getpwnam(SERVER_USER)
    return {
        "user": entry.pw_uid,
        "group": entry.pw_gid,
        "extra_groups": [],
        "env": {**os.environ, "HOME": entry.pw_dir, "USER": SERVER_USER},
    }


def _node_config(cluster: PatroniCluster, node: Node, bindir: Path) -> str:
    data = cluster.root / node.name
    return json.dumps(
        {
            "scope": SCOPE,
            "name": node.name,
            "restapi": {"listen": f"127.0.0.1:{node.api_port}", "connect_address": f"127.0.0.1:{node.api_port}"},
            "etcd3": {"hosts": f"127.0.0.1:{cluster.etcd_port}"},
            "bootstrap": {
                "dcs": {
                    "ttl": TTL,
                    "loop_wait": LOOP_WAIT,
                    "retry_timeout": RETRY_TIMEOUT,
                    "maximum_lag_on_failover": 1048576,
                    "synchronous_mode": cluster.synchronous,
                    "postgresql": {
                        "use_pg_rewind": True,
                        "parameters": {
                            "wal_level": "replica",
                            "hot_standby": "on",
                            "wal_log_hints": "on",
                            "max_wal_senders": 10,
                            "max_replication_slots": 10,
                            "max_connections": 200,
                        },
                    },
                },
                "initdb": [{"encoding": "UTF8"}, {"auth-host": "scram-sha-256"}, {"auth-local": "trust"}],
                "pg_hba": [
                    "local all all trust",
                    "host replication replicator 127.0.0.1/32 scram-sha-256",
                    "host all all 127.0.0.1/32 scram-sha-256",
                ],
            },
            "postgresql": {
                "listen": f"127.0.0.1:{node.pg_port}",
                "connect_address": f"127.0.0.1:{node.pg_port}",
                "data_dir": str(data / "data"),
                "bin_dir": str(bindir),
                "pgpass": str(data / "pgpass"),
                "authentication": {
                    "superuser": {"username": "postgres", "password": cluster.password},
                    "replication": {"username": "replicator", "password": cluster.password},
                    "rewind": {"username": "postgres", "password": cluster.password},
                },
                "parameters": {"unix_socket_directories": str(data)},
            },
            "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False},
        },
        indent=2,
    )


@contextlib.contextmanager
def cluster(nodes: int = 3, *, synchronous: bool = True) -> Iterator[PatroniCluster]:
    """Yield a healthy Patroni cluster of `nodes` PostgreSQL nodes and one etcd; remove it all afterwards."""
    missing = available()
    if missing:
        raise PatroniUnavailable(missing)
    root = Path(tempfile.mkdtemp(prefix="dbops-patroni-"))
    bindir = find_bindir()
    members = []
    for number in range(1, nodes + 1):
        (root / f"node{number}").mkdir()
        members.append(Node(f"node{number}", free_port(), free_port(), root / f"node{number}.json"))
    group = PatroniCluster(root, members, free_port(), secrets.token_urlsafe(16), synchronous)
    if _is_root():
        entry = pwd.getpwnam(SERVER_USER)
        for path in [root, *root.iterdir()]:
            os.chown(path, entry.pw_uid, entry.pw_gid)
    try:
        peer = free_port()
        group.etcd = subprocess.Popen(  # noqa: S603 - Debian's etcd, loopback only
            [shutil.which("etcd"), "--name", "etcd1", "--data-dir", str(root / "etcd"),
             "--listen-client-urls", f"http://127.0.0.1:{group.etcd_port}",
             "--advertise-client-urls", f"http://127.0.0.1:{group.etcd_port}",
             "--listen-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-cluster", f"etcd1=http://127.0.0.1:{peer}"],
            stdout=(root / "etcd.log").open("ab"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        for node in members:
            node.config.write_text(_node_config(group, node, bindir))
            if _is_root():
                os.chown(node.config, pwd.getpwnam(SERVER_USER).pw_uid, pwd.getpwnam(SERVER_USER).pw_gid)
            node.config.chmod(0o600)
        group.start_node(members[0])  # the first one bootstraps, the others clone from it
        deadline = time.monotonic() + 90
        while group.leader() is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no Patroni leader in 90 s: see {root}/node1.log")
            time.sleep(0.2)
        for node in members[1:]:
            group.start_node(node)
        group.wait_healthy()
        yield group
    finally:
        group.stop()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=3, help="PostgreSQL nodes (2 or 3; default 3).")
    parser.add_argument("--async", dest="synchronous", action="store_false", help="Without synchronous mode.")
    args = parser.parse_args()
    try:
        with cluster(args.nodes, synchronous=args.synchronous) as group:
            print(f"leader: {group.leader().name}; Patroni REST: {group.api_urls}")
            print(f"DATABASE_URL={group.url()}")
            print(f"DBOPS_PATRONI_URLS={group.api_urls}")
            print("Ctrl-C stops it and deletes its data.")
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(1)
    except PatroniUnavailable as exc:
        raise SystemExit(str(exc)) from None
