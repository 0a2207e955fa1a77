import importlib
from pathlib import Path

from django.core.management.base import CommandError

from dbops.exceptions import MigrationError
from dbops.management.commands._database import DatabaseCommand
from dbops.management.commands._migration_output import write_json
from dbops.migrations_safety.rewrites import rewrite_migration, write_rewrite


class Command(DatabaseCommand):
    help = (
        "Write the safe form of a pending migration for review: every warn/block finding with a mechanical fix "
        "rewritten (indexes CONCURRENTLY in a non-atomic migration, constraints NOT VALID then VALIDATE, NOT NULL "
        "through a validated check, constants as db_default, removals in two releases). The original is never "
        "edited. Exit 0 written (or nothing to rewrite), 2 error."
    )

    def add_arguments(self, parser):
        parser.add_argument("app_label", help="The app of the migration.")
        parser.add_argument("migration_name", help="The pending migration (a unique prefix is enough).")
        parser.add_argument("--database", default="default", help="Database alias whose live sizes grade it.")
        parser.add_argument(
            "--output",
            default=None,
            help="Folder for the files (default: safe_rewrites/ inside the app's migrations folder, which Django "
            "does not load).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Print the files; write nothing.")
        parser.add_argument("--json", action="store_true", help="Print the rewrite as JSON.")

    def handle(self, *args, **options):
        try:
            rewrite = rewrite_migration(options["app_label"], options["migration_name"], alias=options["database"])
        except MigrationError as exc:
            raise CommandError(str(exc), returncode=2) from None
        if rewrite is None:
            message = "nothing to rewrite: no warn or block finding of this migration has a mechanical safe form"
            if options["json"]:
                write_json(self, {"rewrite": None, "message": message})
            else:
                self.stdout.write(message)
            return
        written = []
        if not options["dry_run"]:
            folder = Path(options["output"]) if options["output"] else self._default_folder(rewrite.app_label)
            try:
                written = write_rewrite(rewrite, folder)
            except MigrationError as exc:
                raise CommandError(str(exc), returncode=2) from None
        if options["json"]:
            write_json(self, {**rewrite.as_dict(), "written": [str(path) for path in written]})
            return
        self.stdout.write(f"Safe form of {rewrite.app_label}.{rewrite.original}:")
        for change in rewrite.changes:
            self.stdout.write(f"  - {change}")
        for left in rewrite.left:
            self.stdout.write(self.style.WARNING(f"  left as is: {left}"))
        if options["dry_run"]:
            for relative, source in rewrite.files():
                self.stdout.write(f"\n# --- {relative}\n{source}")
            return
        for path in written:
            self.stdout.write(f"  wrote {path}")
        self.stdout.write(
            "Review them, then move the files (not later/) into the migrations folder: the last one replaces "
            f"{rewrite.original}, which can then be deleted. Deploy later/ in the release after the code stopped "
            "using what it drops."
        )

    @staticmethod
    def _default_folder(app_label: str) -> Path:
        from django.db.migrations.loader import MigrationLoader

        module_name, _ = MigrationLoader.migrations_module(app_label)
        if module_name is None:
            raise CommandError(f"{app_label} has no migrations module: MIGRATION_MODULES maps it to None", returncode=2)
        module = importlib.import_module(module_name)
        return Path(module.__path__[0]) / "safe_rewrites"
