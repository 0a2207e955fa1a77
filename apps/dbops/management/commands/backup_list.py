from dbops.backups.logical import backup_status
from dbops.management.commands._backup_output import backup_line, render
from dbops.management.commands._database import DatabaseCommand


class Command(DatabaseCommand):
    help = "List recent backups with age, size and verification, and whether a backup is due. Exit 1 when due."

    def add_arguments(self, parser):
        parser.add_argument("--limit", type=int, default=20, help="How many backups to list (default 20).")
        parser.add_argument("--json", action="store_true", help="Print the status as JSON.")

    def handle(self, *args, **options):
        status = backup_status(limit=options["limit"])
        render(self, status, as_json=options["json"])
        if not options["json"]:
            state = "enabled" if status["enabled"] else "DISABLED"
            due = "a backup is DUE" if status["due"] else "no backup due"
            self.stdout.write(f"Backups {state}, every {status['interval_hours']} h; {due}.")
            for summary in status["recent"]:
                self.stdout.write(backup_line(summary))
        if status["enabled"] and status["due"]:
            raise SystemExit(1)
