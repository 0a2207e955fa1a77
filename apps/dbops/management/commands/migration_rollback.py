from dbops.management.commands._database import DatabaseCommand
from dbops.management.commands._migration_output import run_guarded
from dbops.migrations_safety.runner import rollback_migrations


class Command(DatabaseCommand):
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
        run_guarded(
            self,
            rollback_migrations,
            options,
            heading="Rollback plan",
            app_label=options["app_label"],
            target=options["target"],
        )
