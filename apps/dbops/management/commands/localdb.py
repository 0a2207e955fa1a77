import json

from django.core.management.base import BaseCommand, CommandError

from dbops.conf import get_config, mask_url
from dbops.exceptions import LocalDbError
from dbops.localdb import LocalCluster


class Command(BaseCommand):
    help = (
        "Manage the project-local PostgreSQL cluster used when DATABASE_URL is unset "
        "(data in DBOPS_LOCALDB_DIR, port DBOPS_LOCALDB_PORT)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "action",
            choices=["start", "stop", "status", "url"],
            help="start: create (initdb) if needed, start and create the database; stop: stop it, keeping the data; "
            "status: say whether it runs (exit 1 when not); url: print its DATABASE_URL (password masked).",
        )
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")
        parser.add_argument(
            "--show-password",
            action="store_true",
            help="Print the URL with the superuser's password (kept in DBOPS_LOCALDB_DIR's .password file).",
        )

    def handle(self, *args, action, **options):
        config = get_config()
        if action == "start" and config.is_strict:
            raise CommandError(
                f"localdb start is refused with DJANGO_ENV={config.environment}: the project-local cluster trusts "
                "every local connection and is for development only; point DATABASE_URL at your server.",
                returncode=2,
            )
        local = config.localdb
        try:
            cluster = LocalCluster.from_config(local.data_dir, local.port, local.bindir, local.password)
            dbname = "dbops"
            if action == "start":
                created, was_running = not cluster.initialized, cluster.initialized and cluster.is_running()
                cluster.init()
                # Later commands find this cluster again without DBOPS_LOCALDB_PORT, and can log in: recorded
                # before starting it, so a start that fails (a port taken) does not lose the generated password.
                local.port_file.parent.mkdir(parents=True, exist_ok=True)
                local.port_file.write_text(f"{cluster.port}\n")
                if cluster.password:
                    local.password_file.touch(mode=0o600)
                    local.password_file.chmod(0o600)
                    local.password_file.write_text(f"{cluster.password}\n")
                cluster.start()
                cluster.ensure_database(dbname)
                verb = "Created and started" if created else "Already running:" if was_running else "Started"
                message = f"{verb} the cluster in {cluster.data_dir}"
            elif action == "stop":
                was_running = cluster.is_running()
                cluster.stop()
                verb = "Stopped" if was_running else "Not running:"
                message = f"{verb} the cluster in {cluster.data_dir} (data kept)"
            else:
                message = ""
            running = cluster.is_running()
        except LocalDbError as exc:
            raise CommandError(str(exc), returncode=2) from None

        result = {
            "running": running,
            "data_dir": str(cluster.data_dir),
            "port": cluster.port,
            "url": cluster.url(dbname) if options["show_password"] else mask_url(cluster.url(dbname)),
        }
        if options["json"]:
            self.stdout.write(json.dumps(result, indent=2, sort_keys=True))
        elif action == "url":
            self.stdout.write(result["url"])
        elif action == "status":
            state = "running" if running else "stopped"
            self.stdout.write(f"{state}: {cluster.data_dir} on 127.0.0.1:{cluster.port}")
        else:
            self.stdout.write(f"{message}; DATABASE_URL={result['url']}")
        if action == "status" and not running:
            raise SystemExit(1)
