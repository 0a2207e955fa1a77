import json

from django.core.management.base import CommandError
from django.db import connections

from dbops.backups.logical import restore_backup
from dbops.backups.logical.from_storage import choose, restore_from_storage, stored_backups
from dbops.exceptions import BackupError, RestoreRefused, VerificationFailed
from dbops.management.commands._database import EXIT_NOT_FOUND, DatabaseCommand, record_id
from dbops.models import BackupRecord


class Command(DatabaseCommand):
    help = (
        "Restore a backup into the live database. Verifies it first (refusing anything unverifiable), takes a "
        "safety backup of the current database, then restores; dbops' own history is kept. Undo with "
        "backup_restore --id <safety backup>. Afterwards the application's tables and rows are the backup's (tables "
        "created since are dropped). On a new machine with only the storage and the keys: --from-storage lists what "
        "the storage holds; --from-storage --newest-verified (or --from-storage NAME) restores it into the empty "
        "database. Exit 0 restored, 1 refused (nothing touched), 2 failed, 4 no such backup."
    )

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--id", type=record_id, help="Backup id to restore (see backup_list).")
        which.add_argument(
            "--from-storage",
            nargs="?",
            const="",
            metavar="NAME",
            help="Work from the backup storage alone (a new machine): without NAME and --newest-verified, list "
            "what it holds; with one, restore it into the empty database (checked against its metadata).",
        )
        parser.add_argument(
            "--newest-verified",
            action="store_true",
            help="With --from-storage: restore the newest backup whose verification passed.",
        )
        parser.add_argument(
            "--noinput",
            "--no-input",
            action="store_false",
            dest="interactive",
            help="Do not ask for the typed confirmation (the database name).",
        )
        parser.add_argument("--json", action="store_true", help="Print the restore record as JSON.")

    def handle(self, *args, **options):
        if options["from_storage"] is not None:
            return self.from_storage(options["from_storage"], options)
        if options["newest_verified"]:
            raise CommandError("--newest-verified goes with --from-storage.", returncode=2)
        record = BackupRecord.objects.filter(pk=options["id"], status=BackupRecord.Status.SUCCEEDED).first()
        if record is None:
            raise CommandError(
                f"No successful backup #{options['id']}: nothing was restored; see manage.py backup_list.",
                returncode=EXIT_NOT_FOUND,
            )
        database = connections[record.database_alias].settings_dict["NAME"]
        if options["interactive"]:
            self.stdout.write(
                f"This replaces the contents of database {database!r} with backup #{record.pk} "
                f"({record.started_at:%Y-%m-%d %H:%M:%S}). A safety backup is taken first."
            )
            if input(f"Type the database name ({database}) to continue: ").strip() != database:
                raise CommandError("Not confirmed: nothing was changed.", returncode=1)
        progress = (lambda stage: None) if options["json"] else (lambda stage: self.stderr.write(f"… {stage}"))
        try:
            restore = restore_backup(record, requested_by="manage.py backup_restore", progress=progress)
        except RestoreRefused as exc:
            raise CommandError(f"{exc} — the live database was not touched.", returncode=1) from None
        except BackupError as exc:
            raise CommandError(str(exc), returncode=2) from None
        result = {
            "restore": restore.pk,
            "backup": record.pk,
            "database": database,
            "safety_backup": restore.safety_backup_id,
            "status": restore.status,
            "undo": f"manage.py backup_restore --id {restore.safety_backup_id}",
            "dropped_tables": restore.dropped_tables,
        }
        if options["json"]:
            self.stdout.write(json.dumps(result, indent=2, sort_keys=True))
        else:
            dropped = restore.dropped_tables
            since = f" Dropped {len(dropped)} table(s) created since: {', '.join(dropped)}." if dropped else ""
            self.stdout.write(
                f"Restored backup #{record.pk} into {database}.{since} Safety backup #{restore.safety_backup_id}; "
                f"undo with: {result['undo']}"
            )

    def from_storage(self, name: str, options) -> None:
        stored = stored_backups()
        if not name and not options["newest_verified"]:
            listing = [backup.summary() for backup in stored]
            if options["json"]:
                self.stdout.write(json.dumps(listing, indent=2, sort_keys=True))
                return
            for entry in listing:
                self.stdout.write(
                    f"{entry['name']}  {entry['started_at']}  {entry['size_bytes']} bytes  "
                    f"{'verified ' + entry['verified_at'] if entry['verified'] else 'not verified'}"
                )
            self.stdout.write(f"{len(listing)} backup(s) in the storage; restore one with --from-storage NAME.")
            return
        progress = (lambda stage: None) if options["json"] else (lambda stage: self.stderr.write(f"… {stage}"))
        try:
            chosen = choose(stored, name=name, newest_verified=options["newest_verified"])
            result = restore_from_storage(chosen, progress=progress)
        except (RestoreRefused, VerificationFailed) as exc:
            raise CommandError(f"{exc} — nothing was restored.", returncode=1) from None
        except BackupError as exc:
            raise CommandError(str(exc), returncode=2) from None
        if options["json"]:
            self.stdout.write(json.dumps(result, indent=2, sort_keys=True))
        else:
            self.stdout.write(
                f"Restored {result['restored']} into {result['database']}: {result['tables']} tables, "
                f"{result['rows']} rows, every row count as its metadata says. Next: manage.py migrate (when the "
                "code is newer than the backup), then manage.py backup."
            )
