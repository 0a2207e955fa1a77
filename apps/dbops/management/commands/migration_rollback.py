from django.core.management.base import BaseCommand, CommandError

from apps.dbops.exceptions import MigrationFailed, MigrationRefused, MigrationSelectionError
from apps.dbops.migration_runner import rollback_migrations

from ._migration_output import render_outcome


class Command(BaseCommand):
    help = (
        "Roll an app back to a migration (or zero): show the plan, refuse when a step is irreversible (naming it), "
        "take a backup first, run under the same guards as migration_apply, record a MigrationRun. "
        "Exit 0 done, 1 refused, 2 failed."
    )

    def add_arguments(self, parser):
        parser.add_argument("app_label", help="The app to roll back.")
        parser.add_argument("target", help="The migration to go back to (it stays applied), or 'zero'.")
        parser.add_argument("--database", default="default", help="Database alias.")
        parser.add_argument("--reason", default="", help="Why (recorded).")
        parser.add_argument("--no-backup", action="store_true", help="Skip the backup taken before unapplying.")
        parser.add_argument("--dry-run", action="store_true", help="Show the plan only; change nothing.")
        parser.add_argument("--json", action="store_true", help="Print the outcome as JSON.")

    def handle(self, *args, **options):
        progress = (lambda message: None) if options["json"] else (lambda message: self.stderr.write(message))
        try:
            outcome = rollback_migrations(
                alias=options["database"],
                app_label=options["app_label"],
                target=options["target"],
                reason=options["reason"],
                backup=not options["no_backup"],
                dry_run=options["dry_run"],
                progress=progress,
            )
        except MigrationSelectionError as exc:
            raise CommandError(str(exc), returncode=2) from None
        except (MigrationRefused, MigrationFailed) as exc:
            if exc.outcome is not None:
                render_outcome(self, exc.outcome, as_json=options["json"], heading="Rollback plan")
            raise CommandError(str(exc), returncode=1 if isinstance(exc, MigrationRefused) else 2) from None
        render_outcome(self, outcome, as_json=options["json"], heading="Rollback plan")
