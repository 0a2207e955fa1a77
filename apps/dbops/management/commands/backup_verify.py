from django.core.management.base import CommandError

from dbops.backups.logical import backup_summary, verify_backup
from dbops.exceptions import BackupError
from dbops.management.commands._backup_output import backup_line, render
from dbops.management.commands._database import EXIT_NOT_FOUND, DatabaseCommand, record_id
from dbops.models import BackupRecord


class Command(DatabaseCommand):
    help = (
        "Verify a backup: sha256 and size, restore into a scratch database (created and dropped), compare "
        "per-table row counts. Exit 0 passed, 1 failed verification, 2 verification could not run (its key is "
        "missing, the role lacks CREATEDB), 4 no such successful backup."
    )

    def add_arguments(self, parser):
        parser.add_argument("--id", type=record_id, help="Backup id (default: the newest successful backup).")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args, **options):
        records = BackupRecord.objects.filter(status=BackupRecord.Status.SUCCEEDED)
        record = records.filter(pk=options["id"]).first() if options["id"] else records.first()
        if record is None:
            which = f"#{options['id']}" if options["id"] else "yet"
            raise CommandError(f"No successful backup {which}: see manage.py backup_list.", returncode=EXIT_NOT_FOUND)
        progress = (lambda stage: None) if options["json"] else (lambda stage: self.stderr.write(f"… {stage}"))
        try:
            record = verify_backup(record, progress=progress)
        except BackupError as exc:  # no key, no CREATEDB: nothing was judged
            raise CommandError(str(exc), returncode=2) from None
        summary = {**backup_summary(record), "verification_details": record.verification_details}
        render(self, summary, as_json=options["json"])
        if not options["json"]:
            self.stdout.write(backup_line(summary))
        if record.verification != BackupRecord.Verification.PASSED:
            raise CommandError(record.verification_details.get("error", "verification failed"), returncode=1)
