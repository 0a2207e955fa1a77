from django.core.management.base import CommandError

from dbops.backups.logical import backup_summary, verify_backup
from dbops.exceptions import BackupError
from dbops.management.commands._backup_output import backup_line, render
from dbops.management.commands._database import DatabaseCommand
from dbops.models import BackupRecord


class Command(DatabaseCommand):
    help = (
        "Verify a backup: sha256 and size, restore into a scratch database (created and dropped), compare "
        "per-table row counts. Exit 0 passed, 1 failed verification, 2 no such backup or its key is missing."
    )

    def add_arguments(self, parser):
        parser.add_argument("--id", type=int, help="Backup id (default: the newest successful backup).")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args, **options):
        records = BackupRecord.objects.filter(status=BackupRecord.Status.SUCCEEDED)
        record = records.filter(pk=options["id"]).first() if options["id"] else records.first()
        if record is None:
            raise CommandError("No such successful backup: see manage.py backup_list.", returncode=2)
        progress = (lambda stage: None) if options["json"] else (lambda stage: self.stderr.write(f"… {stage}"))
        try:
            record = verify_backup(record, progress=progress)
        except BackupError as exc:  # e.g. an encrypted backup without its key: nothing was verified
            raise CommandError(str(exc), returncode=2) from None
        summary = {**backup_summary(record), "verification_details": record.verification_details}
        render(self, summary, as_json=options["json"])
        if not options["json"]:
            self.stdout.write(backup_line(summary))
        if record.verification != BackupRecord.Verification.PASSED:
            raise CommandError(record.verification_details.get("error", "verification failed"), returncode=1)
