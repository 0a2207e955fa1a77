from dbops.management.commands._database import DatabaseCommand
from dbops.management.commands._migration_output import run_guarded
from dbops.migrations_safety.runner import apply_migrations


class Command(DatabaseCommand):
    help = (
        "Guarded migrate: analyze the plan, refuse blocking findings, take a pre-migration backup, then run Django's "
        "migrate with lock_timeout/statement_timeout, retries on lock timeouts and an advisory lock, recording a "
        "MigrationRun. Exit 0 done, 1 refused, 2 failed."
    )

    def add_arguments(self, parser):
        parser.add_argument("app_label", nargs="?", help="Migrate only this app (default: every app).")
        parser.add_argument("migration_name", nargs="?", help="Migrate this app up to this migration.")
        parser.add_argument("--database", default="default", help="Database alias to migrate.")
        parser.add_argument(
            "--allow-unsafe", action="store_true", help="Run despite blocking findings (needs --reason)."
        )
        parser.add_argument("--reason", default="", help="Why this run happens (recorded; required by --allow-unsafe).")
        parser.add_argument("--no-backup", action="store_true", help="Skip the pre-migration backup.")
        parser.add_argument("--dry-run", action="store_true", help="Show the plan and the findings; change nothing.")
        parser.add_argument("--json", action="store_true", help="Print the outcome as JSON.")

    def handle(self, *args, **options):
        run_guarded(
            self,
            apply_migrations,
            options,
            heading="Plan",
            app_label=options["app_label"],
            migration_name=options["migration_name"],
            allow_unsafe=options["allow_unsafe"],
        )
