"""A PostgreSQL cluster of the project's own, made with the system's initdb/pg_ctl.

Used by `make run` (a persistent cluster under var/, port 54329 by default) and by the test suite (a
throwaway cluster in a temporary folder on a free port). It listens on 127.0.0.1 only and has no unix socket,
so its path length and folder permissions never matter to clients. Connections need the superuser's password
(scram-sha-256, generated at initdb; unix sockets, where a test adds them, use peer authentication): any local
OS user that could reach a trusting cluster would have been a PostgreSQL superuser, able to run programs as
`postgres`. It is for development and tests only (`localdb start` is refused in staging/production).

initdb and pg_ctl refuse to run as root: as root every server command runs as the `postgres` OS user,
on folders that user owns.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import hashlib
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

from dbops.exceptions import LocalDbError
from dbops.osuser import as_user, give_to, is_root

SERVER_USER = "postgres"
SUPERUSER = "postgres"
INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl) were not found: install them "
    "(Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql@16), "
    "or set PG_BINDIR to their folder, or set DATABASE_URL to an existing server."
)


def _has_server_binaries(folder: Path) -> bool:
    return (folder / "initdb").is_file() and (folder / "pg_ctl").is_file()


def find_bindir(explicit: str | None = None) -> Path:
    """Locate initdb/pg_ctl: PG_BINDIR, then `pg_config --bindir`, then the newest /usr/lib/postgresql/*/bin."""
    candidates: list[Path] = []
    if explicit:
        candidates.append(Path(explicit))
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True)
            candidates.append(Path(out.stdout.strip()))
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += [Path(p) for p in sorted(versions, key=lambda p: int(Path(p).parent.name), reverse=True)]
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)
    for folder in candidates:
        if _has_server_binaries(folder):
            return folder
    raise LocalDbError(INSTALL_HINT)


def accepts_connections(port: int, *, timeout: float = 0.5) -> bool:
    """Tell whether something accepts TCP connections on 127.0.0.1:`port` (the project-local cluster's address)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _reachable_by_server_user(path: Path) -> bool:
    """Tell whether the postgres OS user can reach `path` (search permission on every parent)."""
    probe = path if path.exists() else path.parent
    while not probe.exists():
        probe = probe.parent
    result = subprocess.run(as_user(SERVER_USER, ["test", "-x", str(probe)]), capture_output=True, check=False)
    return result.returncode == 0


def resolve_data_dir(configured: Path) -> Path:
    """Return where the cluster can live: `configured`, or as root a temp folder when postgres cannot reach it."""
    if not is_root() or _reachable_by_server_user(configured):
        return configured
    digest = hashlib.sha256(str(configured).encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"dbops-localdb-{digest}" / configured.name


def _private_folder(path: Path, mode: int) -> None:
    """Create `path` with `mode` (no symlink followed), or accept it only as a plain folder nobody else may write.

    An existing one must belong to this user or the server's.
    """
    try:
        os.mkdir(path, mode)
        os.chmod(path, mode)  # whatever the umask took away
        return
    except FileExistsError:
        pass
    found = os.lstat(path)
    if stat.S_ISLNK(found.st_mode) or not stat.S_ISDIR(found.st_mode):
        raise LocalDbError(f"{path} exists and is not a plain folder (a symlink?): refusing to use it; remove it.")
    if found.st_mode & 0o022:
        raise LocalDbError(f"{path} can be written by others (mode {oct(found.st_mode & 0o777)}): remove it.")
    owners = {os.geteuid()}
    with contextlib.suppress(KeyError):
        owners.add(pwd.getpwnam(SERVER_USER).pw_uid)
    if found.st_uid not in owners:
        raise LocalDbError(
            f"{path} belongs to uid {found.st_uid}, neither this user nor {SERVER_USER}: refusing to use it; remove it."
        )


@dataclasses.dataclass
class LocalCluster:
    """One cluster: its data folder, port, the binaries that run it and its superuser's password."""

    data_dir: Path
    port: int
    bindir: Path
    password: str = dataclasses.field(default="", repr=False)

    @classmethod
    def from_config(cls, data_dir: Path, port: int, bindir: str | None = None, password: str = "") -> LocalCluster:
        return cls(data_dir=resolve_data_dir(data_dir), port=port, bindir=find_bindir(bindir), password=password)

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    @property
    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def url(self, dbname: str = "postgres") -> str:
        credentials = f"{SUPERUSER}:{quote(self.password, safe='')}" if self.password else SUPERUSER
        return f"postgres://{credentials}@127.0.0.1:{self.port}/{dbname}"

    def _run(
        self, program: str, *args: str, timeout: float = 120, password: str = ""
    ) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / program), *args]
        if is_root():
            command = as_user(SERVER_USER, command)
        env = {**os.environ, "PGPASSWORD": password} if password else None
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False, env=env)
        except subprocess.TimeoutExpired:
            raise LocalDbError(f"{program} did not finish within {timeout:g} s (see {self.log_file}).") from None

    def _make_owned_folder(self, folder: Path) -> None:
        if folder.is_relative_to(Path(tempfile.gettempdir())):
            # The temp folder is everyone's: a planted `dbops-localdb-<hash>` symlink would get its target chowned to
            # postgres. Create each folder there exclusively, or use it only when it is a plain folder of ours.
            _private_folder(folder.parent, 0o755)  # the server's OS user must pass through; nobody else may write
            _private_folder(folder, 0o700)
        else:
            folder.mkdir(parents=True, exist_ok=True)
        give_to(SERVER_USER, folder, 0o700)

    def init(self, *, durable: bool = True) -> None:
        """Create the cluster (initdb) unless it exists. `durable=False` turns fsync off: for throwaway clusters."""
        if self.initialized:
            return
        self._make_owned_folder(self.data_dir)
        self.password = self.password or secrets.token_urlsafe(24)
        with self._password_file() as password_file:
            result = self._run(
                "initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "-E", "UTF8", "--locale=C", "--no-sync",
                "--auth-local=peer", "--auth-host=scram-sha-256", f"--pwfile={password_file}",
            )  # fmt: skip
        if result.returncode != 0:
            raise LocalDbError(f"initdb failed in {self.data_dir}: {result.stderr.strip().splitlines()[-1:]}")
        settings = [
            "listen_addresses = '127.0.0.1'",
            f"port = {self.port}",
            "unix_socket_directories = ''",
            "max_connections = 200",
            "shared_buffers = 128MB",
            # Statement statistics for `db_insights` (I009); `CREATE EXTENSION pg_stat_statements` makes them readable.
            "shared_preload_libraries = 'pg_stat_statements'",
        ]
        if not durable:
            settings += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
        with (self.data_dir / "postgresql.auto.conf").open("a") as conf:
            conf.write("\n".join(settings) + "\n")

    @contextlib.contextmanager
    def _password_file(self):
        """Yield a file holding the password that only initdb's user can read; delete it afterwards."""
        handle, name = tempfile.mkstemp(prefix="dbops-initdb-")
        try:
            with os.fdopen(handle, "w") as file:
                file.write(self.password + "\n")
            give_to(SERVER_USER, name)
            yield name
        finally:
            os.unlink(name)

    def is_running(self) -> bool:
        return self.initialized and self._run("pg_ctl", "status", "-D", str(self.data_dir)).returncode == 0

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        if not self.initialized:
            raise LocalDbError(f"No cluster in {self.data_dir}: run `manage.py localdb start` to create it.")
        if self.is_running():
            return
        result = self._run("pg_ctl", "start", "-D", str(self.data_dir), "-l", str(self.log_file), "-w", "-t", "60")
        if result.returncode != 0:
            raise LocalDbError(
                f"pg_ctl could not start the cluster in {self.data_dir} on port {self.port} "
                f"(is the port taken?); see {self.log_file}."
            )
        self.wait_until_ready()

    def wait_until_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.url(), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise LocalDbError(f"The cluster on port {self.port} did not accept connections.") from None
                time.sleep(0.1)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: `fast` (clean) or `immediate` (as if it crashed)."""
        if self.is_running():
            self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", mode, "-w", "-t", "60")

    def ensure_database(self, name: str) -> bool:
        """Create database `name` unless it exists; return whether it was created."""
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=5) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
            if exists:
                return False
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            return True

    def replicate_from(self, primary: LocalCluster) -> None:
        """Create this cluster as a streaming standby of `primary` (pg_basebackup -R), on this cluster's port."""
        self._make_owned_folder(self.data_dir)
        self.password = primary.password  # the same superuser: the data is a copy
        result = self._run(
            "pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port), "-U", SUPERUSER,
            "-D", str(self.data_dir), "-R", "-X", "stream", "--checkpoint=fast", "--no-sync",
            password=primary.password,
        )  # fmt: skip
        if result.returncode != 0:
            raise LocalDbError(f"pg_basebackup from port {primary.port} failed: {result.stderr.strip()[-300:]}")
        with (self.data_dir / "postgresql.auto.conf").open("a") as conf:
            conf.write(f"port = {self.port}\n")

    def promote(self) -> None:
        """Promote this standby to a primary and wait until it accepts writes."""
        result = self._run("pg_ctl", "promote", "-D", str(self.data_dir), "-w", "-t", "60")
        if result.returncode != 0:
            raise LocalDbError(f"pg_ctl promote failed: {result.stderr.strip()[-300:]}")

    def destroy(self) -> None:
        """Stop the server at once and delete its data."""
        self.stop(mode="immediate")
        shutil.rmtree(self.data_dir, ignore_errors=True)


@contextlib.contextmanager
def throwaway_cluster(bindir: str | None = None):
    """Yield a started, non-durable cluster on a free port in a temporary folder; delete it afterwards."""
    root = Path(tempfile.mkdtemp(prefix="dbops-test-pg-"))
    cluster = LocalCluster(data_dir=root / "data", port=free_port(), bindir=find_bindir(bindir))
    try:
        give_to(SERVER_USER, root)
        cluster.init(durable=False)
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def throwaway_standby(primary: LocalCluster):
    """Yield a started streaming standby of `primary` on a free port in a temporary folder; delete it afterwards."""
    root = Path(tempfile.mkdtemp(prefix="dbops-standby-"))
    standby = LocalCluster(data_dir=root / "data", port=free_port(), bindir=primary.bindir)
    try:
        give_to(SERVER_USER, root)
        standby.replicate_from(primary)
        standby.start()
        yield standby
    finally:
        standby.destroy()
        shutil.rmtree(root, ignore_errors=True)
