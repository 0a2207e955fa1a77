"""Print a redis:// URL for `make run`, so the dashboard, the alert evaluator and the breaker share one cache.

A Redis already answering on 127.0.0.1:6379 is used (database 1, keys prefixed "dbops:"); otherwise, when
redis-server is installed, a project-local one is started on a free loopback port (var/redis, no persistence) and
left running like the project-local PostgreSQL. Prints nothing when there is no Redis: the site then runs on the
per-process cache and the dashboard says so.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from dbops.localdb import free_port

STATE = Path(__file__).resolve().parents[2] / "var" / "redis"


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def main() -> int:
    if answers(6379):
        print("redis://127.0.0.1:6379/1")
        return 0
    port_file = STATE / "port"
    if port_file.exists() and answers(int(port_file.read_text())):
        print(f"redis://127.0.0.1:{port_file.read_text().strip()}/0")
        return 0
    binary = shutil.which("redis-server")
    if binary is None:
        print("no Redis: the cache is per-process (install redis-server or set CACHE_URL)", file=sys.stderr)
        return 0
    STATE.mkdir(parents=True, exist_ok=True)
    port = free_port()
    subprocess.run(  # noqa: S603 - the resolved redis-server and fixed arguments
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "yes",
            "--dir",
            str(STATE),
            "--pidfile",
            str(STATE / "redis.pid"),
            "--logfile",
            str(STATE / "redis.log"),
        ],
        check=True,
    )
    deadline = time.monotonic() + 10
    while not answers(port):
        if time.monotonic() > deadline:
            print(f"redis-server did not answer on {port}: see {STATE / 'redis.log'}", file=sys.stderr)
            return 0
        time.sleep(0.1)
    port_file.write_text(str(port))
    print(f"redis://127.0.0.1:{port}/0")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
