"""Servers and load for benchmarks (and the tests that run the image's command): gunicorn, wrk, a fallback loader."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg

PROJECT_DIR = Path(__file__).resolve().parents[2]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dockerfile_command() -> list[str]:
    """Return the image's CMD, read from the Dockerfile so what runs here is exactly what the image runs."""
    text = (PROJECT_DIR / "Dockerfile").read_text()
    return json.loads(re.search(r"^CMD (\[.*\])$", text, re.MULTILINE).group(1))


def http_get(url: str, timeout: float = 5, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - loopback URLs only
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@contextlib.contextmanager
def gunicorn(
    environ: dict[str, str], *, ready_path: str = "/health/live", timeout: float = 30, log: list[bytes] | None = None
):
    """Run the Dockerfile's CMD on a free loopback port; yield the base URL; stop it afterwards.

    Its output lines are collected into `log` when a list is given.
    """
    port = free_port()
    command = dockerfile_command()
    command = [sys.executable, "-m", command[0], *command[1:], "--bind", f"127.0.0.1:{port}"]
    env = {**environ, "PORT": str(port)}
    process = subprocess.Popen(command, cwd=PROJECT_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    # Drain the log so a chatty server never blocks on a full pipe.
    log = [] if log is None else log
    drain = threading.Thread(target=lambda: log.extend(iter(process.stdout.readline, b"")), daemon=True)
    drain.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                drain.join(timeout=5)
                raise RuntimeError(f"gunicorn exited: {b''.join(log).decode()[-2000:]}")
            try:
                http_get(base + ready_path, timeout=2)
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    raise RuntimeError("gunicorn did not answer in time") from None
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def load(url: str, *, seconds: float, connections: int = 32) -> dict[str, float]:
    """Drive `url` for `seconds` with keep-alive connections: wrk when installed, else a Python loader."""
    if shutil.which("wrk"):
        out = subprocess.run(
            ["wrk", "-t2", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
        return {"rps": rps, "errors": float(non2xx.group(1)) if non2xx else 0.0, "tool": "wrk"}
    return _python_load(url, seconds=seconds, connections=min(connections, 8))


def _python_load(url: str, *, seconds: float, connections: int) -> dict[str, float]:
    match = re.match(r"http://([^:/]+):(\d+)(/.*)", url)
    host, port, path = match.group(1), int(match.group(2)), match.group(3)
    counts = {"ok": 0, "errors": 0}
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker():
        conn = http.client.HTTPConnection(host, port, timeout=10)
        ok = errors = 0
        while time.monotonic() < deadline:
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                ok += response.status < 400
                errors += response.status >= 400
            except (OSError, http.client.HTTPException):
                errors += 1
                conn = http.client.HTTPConnection(host, port, timeout=10)
        with lock:
            counts["ok"] += ok
            counts["errors"] += errors

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"rps": counts["ok"] / (time.monotonic() - started), "errors": float(counts["errors"]), "tool": "python"}


class Traffic:
    """Client threads that hit a URL until stopped, recording (start, status, seconds, X-Dbops-Breaker, body)."""

    def __init__(self, url: str, threads: int = 4) -> None:
        self.url = url
        self.stop = threading.Event()
        self.records: list[tuple[float, int, float, str, str]] = []
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                with urllib.request.urlopen(self.url, timeout=15) as response:  # noqa: S310 - loopback
                    status, header = response.status, response.headers.get("X-Dbops-Breaker", "")
                    body = response.read(64).decode(errors="replace")
            except urllib.error.HTTPError as exc:
                status, header, body = exc.code, exc.headers.get("X-Dbops-Breaker", ""), ""
            except OSError:
                status, header, body = 0, "", ""
            self.records.append((started, status, time.monotonic() - started, header, body))
            time.sleep(0.01)

    def __enter__(self) -> Traffic:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=20)

    def wait_for(self, predicate, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(predicate(r) for r in list(self.records)):
                return time.monotonic()
            time.sleep(0.02)
        raise AssertionError(f"condition not reached in {timeout} s; last: {self.records[-5:]}")


def interleaved(
    bases: dict[str, str], path: str, *, rounds: int, seconds: float, cpu: dict[str, list[float]] | None = None
) -> tuple[dict, dict, str]:
    """Load each server's `path` in interleaved rounds (order reversed every other round, after a warm-up).

    Returns (requests/s per round by name, errors by name, load tool). Conditions run back to back within a
    round, so per-round ratios cancel this box's drift. With `cpu`, each round's CPU seconds per request of the
    server's processes are appended there too (time the host takes from a round slows it, but costs no CPU).
    """
    for base in bases.values():
        load(base + path, seconds=1)  # warm-up: pools open, code paths hot
    rps: dict[str, list[float]] = {name: [] for name in bases}
    errors = dict.fromkeys(bases, 0.0)
    tool = ""
    for round_number in range(rounds):
        order = list(bases) if round_number % 2 == 0 else list(reversed(bases))
        for name in order:
            port = int(bases[name].rsplit(":", 1)[1])
            before = server_cpu_seconds(port)
            result = load(bases[name] + path, seconds=seconds)
            if cpu is not None:
                served = result["rps"] * max(1, round(seconds))
                cpu.setdefault(name, []).append((server_cpu_seconds(port) - before) / served if served else 0.0)
            rps[name].append(result["rps"])
            errors[name] += result["errors"]
            tool = result["tool"]
    return rps, errors, tool


def server_cpu_seconds(port: int) -> float:
    """CPU seconds (user + system) used so far by the processes serving on `port` (gunicorn's master and workers)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if f"127.0.0.1:{port}".encode() not in (entry / "cmdline").read_bytes():
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # a process that ended meanwhile
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


class ConnectionSampler:
    """The server's count of connections per application_name, sampled every 20 ms, across restarts."""

    def __init__(self, url: str, names: list[str]) -> None:
        self.url, self.peak, self.samples = url, dict.fromkeys(names, 0), 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        query = "SELECT application_name, count(*) FROM pg_stat_activity GROUP BY 1"
        while not self.stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=2) as conn:
                    while not self.stop.is_set():
                        for name, count in conn.execute(query):
                            if name in self.peak:
                                self.peak[name] = max(self.peak[name], count)
                        self.samples += 1
                        time.sleep(0.02)
            except psycopg.Error:
                time.sleep(0.05)

    def __enter__(self) -> ConnectionSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


def wait_for_port(port: int, process, timeout: float = 10.0) -> None:
    """Wait until `process` listens on 127.0.0.1:`port`; kill it and fail if it dies or takes too long."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.05)


def s3_server_available(*, tls: bool = False) -> bool:
    moto = (Path(sys.executable).parent / "moto_server").exists()
    return moto and (not tls or bool(shutil.which("stunnel4") or shutil.which("stunnel")))


class S3Server:
    """moto's standalone S3 server on a free loopback port (a real HTTP S3 API, in a process of its own).

    With `tls`, stunnel (Debian's stunnel4) serves it as https with a self-signed certificate: pgBackRest speaks
    only https to a store, and moto's own --ssl ends connections without TLS close_notify, which OpenSSL 3
    clients (pgBackRest) refuse as "unexpected eof".
    """

    ACCESS_KEY, SECRET_KEY = "dbops-test-key", "dbops-test-secret/+= with symbols"

    def __init__(self, *, tls: bool = False) -> None:
        self.tls = tls
        self.certificate: Path | None = None
        moto_port = free_port()
        self.processes = [
            subprocess.Popen(  # noqa: S603 - moto's server from this virtualenv, loopback only
                [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        ]
        wait_for_port(moto_port, self.processes[0], timeout=30)
        self.port = self._serve_tls(moto_port) if tls else moto_port
        self.url = f"https://localhost:{self.port}" if tls else f"http://127.0.0.1:{self.port}"

    def _serve_tls(self, backend_port: int) -> int:
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix="dbops-s3-tls-"))
        # pgBackRest matches the endpoint's host name against the DNS names only: serve it as "localhost".
        certificate = ["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost", "-days", "2", "-nodes"]
        subprocess.run(  # noqa: S603 - a throwaway self-signed certificate for loopback
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                *certificate,
                "-keyout",
                str(folder / "key.pem"),
                "-out",
                str(folder / "cert.pem"),
            ],  # fmt: skip
            check=True,
            capture_output=True,
        )
        self.certificate = folder / "cert.pem"
        folder.chmod(0o755)  # the certificate (not the key) is for every client, pgBackRest's OS user too
        self.certificate.chmod(0o644)
        port = free_port()
        (folder / "stunnel.conf").write_text(
            f"foreground = yes\npid =\n[s3]\naccept = 127.0.0.1:{port}\nconnect = 127.0.0.1:{backend_port}\n"
            f"cert = {folder / 'cert.pem'}\nkey = {folder / 'key.pem'}\n"
        )
        stunnel = shutil.which("stunnel4") or shutil.which("stunnel") or "stunnel"
        self.processes.append(
            subprocess.Popen(  # noqa: S603 - Debian's stunnel, loopback only
                [stunnel, str(folder / "stunnel.conf")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        )
        wait_for_port(port, self.processes[-1], timeout=30)
        return port

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=self.ACCESS_KEY,
            aws_secret_access_key=self.SECRET_KEY,
            region_name="us-east-1",
            verify=str(self.certificate) if self.certificate else True,  # self-signed: trusted by its file here
        )

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)


def server_environ(database_url: str, **extra: str) -> dict[str, str]:
    """Return the environment of a production-mode server against `database_url` (small pools, 2x4 gthread)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "DJANGO_", "ENFORCE_", "PORT"))}
    env.update(
        DJANGO_ENV="production",
        DATABASE_URL=database_url,
        SECRET_KEY="benchmark-and-test-only-secret-" * 2,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        DATABASE_POOL_SIZE="2",
        DATABASE_POOL_MAX_OVERFLOW="4",
        WEB_CONCURRENCY="2",
        GUNICORN_THREADS="4",
    )
    env.update(extra)
    if env.get("DJANGO_ROOT_URLCONF", "").startswith("bench."):
        env["DJANGO_ALLOW_BENCHMARK_URLS"] = "true"  # production refuses the public benchmark endpoints otherwise
    return env
