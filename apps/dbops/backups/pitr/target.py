"""The server and pgBackRest repository PITR works on (`PitrTarget`), and the errors PITR raises."""

from __future__ import annotations

import dataclasses
import getpass
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import psycopg.sql
from django.db import connections

from dbops.backups.pitr.ini import parse_config, with_settings
from dbops.conf import BackupS3Config, PitrConfig, get_config
from dbops.exceptions import DbopsError
from dbops.osuser import is_root

MANAGED_HOST_SUFFIXES = {
    ".rds.amazonaws.com": "Amazon RDS / Aurora",
    ".postgres.database.azure.com": "Azure Database for PostgreSQL",
    ".cloudsql": "Google Cloud SQL",
    ".supabase.co": "Supabase",
    ".neon.tech": "Neon",
}


class PitrError(DbopsError):
    """A PITR operation could not run or failed."""


class PitrRefused(PitrError):
    """Refused before touching anything (outside the window, server running, not configured)."""


@dataclasses.dataclass(frozen=True)
class PitrTarget:
    """One server and its pgBackRest repository."""

    stanza: str
    repo_path: Path
    pg_path: Path
    pg_port: int
    socket_path: str
    pg_user: str
    conninfo: dict = dataclasses.field(repr=False)  # holds the password
    retention_full: int = 2
    run_as: str = ""
    pg_password: str = dataclasses.field(default="", repr=False)  # pgBackRest's database user's, given as PGPASSWORD
    repo_s3: BackupS3Config | None = dataclasses.field(default=None, repr=False)  # holds the store's credentials
    s3_verify_tls: bool = True
    s3_ca_file: str = ""
    # The database pgBackRest connects to (pg1-database), where its user's function grants are checked: not the
    # site's, whose dumps would carry GRANTs on pg_catalog functions that a restore then cannot apply.
    pg_database: str = "postgres"

    @classmethod
    def from_settings(cls, alias: str = "default") -> PitrTarget:
        config: PitrConfig = get_config().pitr
        if not config.enabled:
            raise PitrRefused("point-in-time recovery is not configured: set DATABASE_PITR_ENGINE=pgbackrest")
        params = connections[alias].get_connection_params()
        conninfo = {k: v for k, v in params.items() if k in ("host", "port", "user", "password", "dbname")}
        return cls(
            stanza=config.stanza,
            repo_path=config.repo_path,
            pg_path=Path(config.pg_path),
            pg_port=int(params.get("port") or 5432),
            socket_path=config.socket_path,
            pg_user=config.maintenance_user or params.get("user") or "postgres",
            conninfo=conninfo,
            retention_full=config.retention_full,
            run_as=config.run_as,
            pg_password=config.maintenance_password if config.maintenance_user else params.get("password") or "",
            repo_s3=config.repo_s3,
            s3_verify_tls=config.s3_verify_tls,
            s3_ca_file=config.s3_ca_file,
            pg_database=config.pg_database,
        )

    @property
    def repo_location(self) -> str:
        """Where the repository lives, for people: a folder or s3://bucket/path (never a credential)."""
        if self.repo_s3 is None:
            return str(self.repo_path / "repo")
        return f"s3://{self.repo_s3.bucket}{self._s3_repo_path()}"

    def _s3_repo_path(self) -> str:
        prefix = self.repo_s3.prefix.strip("/") if self.repo_s3 else ""
        return "/" + "/".join(filter(None, [prefix, "pgbackrest"]))

    @property
    def config_file(self) -> Path:
        return self.repo_path / "pgbackrest.conf"

    @property
    def os_user(self) -> str:
        """The OS user pgBackRest runs as: DATABASE_PITR_RUN_AS, else postgres when root, else this user."""
        if self.run_as:
            return self.run_as
        return "postgres" if is_root() else getpass.getuser()

    def archive_command(self) -> str:
        return f"pgbackrest --config={self.config_file} --stanza={self.stanza} archive-push %p"

    def managed_settings(self) -> dict[str, dict[str, str]]:
        """Return the keys dbops owns in pgbackrest.conf, per section (everything else there is the operator's)."""
        repo = self.repo_path
        return {
            "global": {
                **self._repository_settings(),
                "repo1-retention-full": str(self.retention_full),
                "log-path": str(repo / "log"),
                "lock-path": str(repo / "lock"),
                "spool-path": str(repo / "spool"),
            },
            self.stanza: {
                "pg1-path": str(self.pg_path),
                "pg1-port": str(self.pg_port),
                "pg1-socket-path": self.socket_path,
                "pg1-user": self.pg_user,
                "pg1-database": self.pg_database,
            },
        }

    def _repository_settings(self) -> dict[str, str]:
        if self.repo_s3 is None:  # repo1-type left to pgBackRest's default (posix) or to the operator
            return {"repo1-path": str(self.repo_path / "repo")}
        store = self.repo_s3
        endpoint = urlsplit(store.endpoint_url or f"https://s3.{store.region}.amazonaws.com")
        settings = {
            "repo1-type": "s3",
            "repo1-path": self._s3_repo_path(),
            "repo1-s3-bucket": store.bucket,
            "repo1-s3-endpoint": endpoint.hostname or "",
            "repo1-s3-region": store.region,
            # Virtual-host style needs DNS per bucket: S3-compatible stores on their own host answer path style.
            "repo1-s3-uri-style": "path" if store.endpoint_url else "host",
            "repo1-storage-port": str(endpoint.port or 443),
            "repo1-storage-verify-tls": "y" if self.s3_verify_tls else "n",
            # Small files (most of a cluster's relation files) bundled into a few objects: far fewer requests to
            # the store per backup (pgBackRest >= 2.39 recommends it for object stores).
            "repo1-bundle": "y",
        }
        if self.s3_ca_file:
            settings["repo1-storage-ca-file"] = self.s3_ca_file
        if store.access_key:
            settings.update({"repo1-s3-key": store.access_key, "repo1-s3-key-secret": store.secret_key})
        else:  # an instance role: pgBackRest asks the metadata service, as boto3 does for the dumps
            settings["repo1-s3-key-type"] = "auto"
        return settings

    def config_text(self, current: str | None = None) -> str:
        """Return pgbackrest.conf: `current` with dbops' keys set (the operator's other lines kept), or a new one."""
        if current is None:
            current = (
                "# Written by dbops (manage.py pitr setup-check --fix). pgBackRest reads it; dbops passes --config.\n"
                "# Add your own keys (compression, encryption, ...): --fix only ever sets dbops' own.\n"
                "[global]\nlog-level-console=warn\nlog-level-file=info\nstart-fast=y\n"
            )
        return with_settings(current, self.managed_settings())

    def config_differences(self, current: str | None) -> list[str]:
        """Name dbops' keys that `current` lacks or sets otherwise ([] when it is as dbops needs it)."""
        found = parse_config(current or "")
        return [
            f"[{section}] {key}"
            for section, values in self.managed_settings().items()
            for key, value in values.items()
            if found.get(section, {}).get(key) != value
        ]

    def connect(self, timeout: float = 5.0, *, dbname: str | None = None) -> psycopg.Connection:
        conninfo = {**self.conninfo, **({"dbname": dbname} if dbname else {})}
        return psycopg.connect(**conninfo, connect_timeout=max(2, int(timeout)), autocommit=True)


def managed_provider(target: PitrTarget) -> str | None:
    """Name the managed service behind the database host, if it is one (they do PITR themselves)."""
    host = str(target.conninfo.get("host") or "").lower()
    return next((name for suffix, name in MANAGED_HOST_SUFFIXES.items() if suffix in host), None)
