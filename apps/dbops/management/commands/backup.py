from django.core.management.base import CommandError

from dbops.backups.logical import backup_due, backup_summary, take_backup
from dbops.conf import get_config
from dbops.exceptions import BackupError, BackupInProgress
from dbops.management.commands._backup_output import backup_line, render
from dbops.management.commands._database import DatabaseCommand
from dbops.models import BackupRecord


class Command(DatabaseCommand):
    help = (
        "Take a verified-ready backup of the database (pg_dump --format=custom through django-dbbackup) "
        "with its sha256 and per-table row counts. Exit 0 done or nothing due, 1 refused (another backup "
        "running), 2 failed."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--if-due",
            action="store_true",
            help="Do nothing unless the last successful backup is older than DATABASE_BACKUP_INTERVAL_HOURS (cron).",
        )
        parser.add_argument(
            "--trigger",
            choices=[t.value for t in BackupRecord.Trigger],
            default=None,
            help="What to record as the reason (default: schedule with --if-due, else command).",
        )
        parser.add_argument("--compress", action="store_true", help="gzip the dump.")
        parser.add_argument("--database", default="default", help="Database alias to back up.")
        parser.add_argument("--force", action="store_true", help="Back up even when DATABASE_BACKUP_ENABLED=false.")
        parser.add_argument("--json", action="store_true", help="Print the backup record as JSON.")

    def handle(self, *args, **options):
        config = get_config()
        if not config.backup_enabled and not options["force"]:
            if options["if_due"]:
                self.stdout.write("Backups are disabled (DATABASE_BACKUP_ENABLED=false): nothing to do.")
                return
            raise CommandError("Backups are disabled (DATABASE_BACKUP_ENABLED=false): pass --force.", returncode=2)
        if options["if_due"] and not backup_due():
            self.stdout.write(f"No backup due (interval {config.backup_interval_hours} h).")
            return
        trigger = options["trigger"] or ("schedule" if options["if_due"] else "command")
        progress = (lambda stage: None) if options["json"] else (lambda stage: self.stderr.write(f"… {stage}"))
        try:
            record = take_backup(
                trigger=trigger, alias=options["database"], compress=options["compress"], progress=progress
            )
        except BackupInProgress as exc:
            raise CommandError(str(exc), returncode=1) from None
        except BackupError as exc:
            raise CommandError(str(exc), returncode=2) from None
        summary = backup_summary(record)
        render(self, summary, as_json=options["json"])
        if not options["json"]:
            self.stdout.write(backup_line(summary))
