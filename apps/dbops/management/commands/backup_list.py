from dbops.backups.logical import LOCATION_NAMES, backup_status
from dbops.management.commands._backup_output import BACKUP_HEADER, backup_line, render
from dbops.management.commands._database import DatabaseCommand, record_id


class Command(DatabaseCommand):
    help = "List recent backups with age, size and verification, and whether a backup is due. Exit 1 when due."

    def add_arguments(self, parser):
        parser.add_argument("--limit", type=record_id, default=20, help="How many backups to list (default 20).")
        parser.add_argument("--json", action="store_true", help="Print the status as JSON.")

    def handle(self, *args, **options):
        status = backup_status(limit=options["limit"])
        render(self, status, as_json=options["json"])
        if not options["json"]:
            state = "enabled" if status["enabled"] else "DISABLED"
            due = "a backup is DUE" if status["due"] else "no backup due"
            self.stdout.write(f"Backups {state}, every {status['interval_hours']} h; {due}.")
            for location, newest in status["newest_verified"].items():
                shown = (
                    f"#{newest['id']}, {newest['age_hours']:.1f} h old" if newest["id"] else "none yet (backup_verify)"
                )
                self.stdout.write(f"Newest verified backup {LOCATION_NAMES[location]}: {shown}.")
                if newest["missing"]:
                    gone = ", ".join(f"#{backup_id}" for backup_id in newest["missing"])
                    self.stdout.write(f"  Verified but their file is missing {LOCATION_NAMES[location]}: {gone}.")
                if newest["unconfirmed"]:
                    self.stdout.write(f"  Not confirmed: {newest['unconfirmed']}.")
            if status["recent"]:
                self.stdout.write(BACKUP_HEADER)
            else:
                self.stdout.write("No backups yet: run manage.py backup (ops/ has cron, systemd and Kubernetes jobs).")
            for summary in status["recent"]:
                self.stdout.write(backup_line(summary))
        if status["enabled"] and status["due"]:
            raise SystemExit(1)
