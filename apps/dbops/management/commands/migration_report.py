from django.core.management.base import CommandError
from django.db import DatabaseError

from dbops.exceptions import MigrationError
from dbops.management.commands._database import DatabaseCommand
from dbops.management.commands._migration_output import write_json, write_report
from dbops.migrations_safety.analysis import analyze
from dbops.migrations_safety.catalog import Severity
from dbops.migrations_safety.rewrites import rewrites_for


class Command(DatabaseCommand):
    help = (
        "Grade migrations before they run: what each operation locks, rewrites or breaks, weighed by the live size "
        "of its table, with the safe form of each mechanical finding as migration code (migration_rewrite writes it). "
        "Default: every pending migration. Exit 0 clean, 1 findings at or above --fail-on, 2 error."
    )

    def add_arguments(self, parser):
        parser.add_argument("app_label", nargs="?", help="Only this app's migrations.")
        parser.add_argument("migration_name", nargs="?", help="Only this migration (a unique prefix is enough).")
        parser.add_argument(
            "--all", action="store_true", dest="include_applied", help="Include applied migrations (an audit)."
        )
        parser.add_argument("--database", default="default", help="Database alias to analyze against.")
        parser.add_argument(
            "--fail-on",
            choices=[s.label for s in Severity],
            default="block",
            help="Exit 1 when a finding (not suppressed) is at least this severe (default: block).",
        )
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")
        parser.add_argument("--brief", action="store_true", help="Leave out each finding's why and safe alternative.")

    def handle(self, *args, **options):
        if options["migration_name"] and not options["app_label"]:
            raise CommandError("a migration name needs its app_label", returncode=2)
        try:
            report = analyze(
                alias=options["database"],
                app_label=options["app_label"],
                migration_name=options["migration_name"],
                include_applied=options["include_applied"],
            )
        except MigrationError as exc:
            raise CommandError(str(exc), returncode=2) from None
        except DatabaseError as exc:
            raise CommandError(f"cannot read the database: {type(exc).__name__}: {exc}".strip(), returncode=2) from None
        rewrites = rewrites_for(report)
        if options["json"]:
            write_json(self, {**report.as_dict(), "rewrites": {key: r.as_dict() for key, r in rewrites.items()}})
        else:
            write_report(self, report, verbose=not options["brief"], rewrites=rewrites)
        if report.fails(Severity[options["fail_on"].upper()]):
            raise CommandError(f"findings at or above {options['fail_on']}", returncode=1)
