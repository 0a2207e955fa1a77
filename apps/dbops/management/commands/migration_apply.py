from django.core.management.base import BaseCommand, CommandError

from apps.dbops.exceptions import MigrationFailed, MigrationRefused, MigrationSelectionError
from apps.dbops.migration_runner import apply_migrations

from ._migration_output import render_outcome


class Command(BaseCommand):
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
        progress = (lambda message: None) if options["json"] else (lambda message: self.stderr.write(message))
        try:
            outcome = apply_migrations(
                alias=options["database"],
                app_label=options["app_label"],
                migration_name=options["migration_name"],
                allow_unsafe=options["allow_unsafe"],
                reason=options["reason"],
                backup=not options["no_backup"],
                dry_run=options["dry_run"],
                progress=progress,
            )
        except MigrationSelectionError as exc:
            raise CommandError(str(exc), returncode=2) from None
        except (MigrationRefused, MigrationFailed) as exc:
            if exc.outcome is not None:
                render_outcome(self, exc.outcome, as_json=options["json"], heading="Plan")
            raise CommandError(str(exc), returncode=1 if isinstance(exc, MigrationRefused) else 2) from None
        render_outcome(self, outcome, as_json=options["json"], heading="Plan")
