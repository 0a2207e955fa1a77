from dbops.backups.logical import backup_summary, prune_backups, prune_local_copies, prune_orphans
from dbops.conf import get_config
from dbops.management.commands._backup_output import backup_line, render
from dbops.management.commands._database import DatabaseCommand


class Command(DatabaseCommand):
    help = (
        "Delete backup files older than DATABASE_BACKUP_RETENTION_DAYS, always keeping the newest "
        "DATABASE_BACKUP_KEEP_VERIFIED verified successful backups; local copies beside a bucket older than "
        "DATABASE_BACKUP_LOCAL_COPY_DAYS (keeping the newest verified one); and the files of this site's failed or "
        "killed backups (named for one of its records). A backup-named file no record here proves its own (another "
        "site's in a shared folder or prefix) is listed and kept. Unfinished uploads of this site's dead backups are "
        "aborted (upload:<name>). Records stay as history."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="List what would be deleted; delete nothing.")
        parser.add_argument("--json", action="store_true", help="Print the affected backups as JSON.")

    def handle(self, *args, **options):
        doomed = prune_backups(dry_run=options["dry_run"])
        local_copies = prune_local_copies(dry_run=options["dry_run"])
        orphans = prune_orphans(dry_run=options["dry_run"])
        summaries = [backup_summary(r) for r in doomed]
        report = {
            "dry_run": options["dry_run"],
            "backups": summaries,
            "local_copies": [record.local_copy for record in local_copies],
            "orphans": orphans.ours,
            "kept_unproven": orphans.unproven,
        }
        render(self, report, as_json=options["json"])
        if not options["json"]:
            verb = "Would delete" if options["dry_run"] else "Deleted"
            config = get_config()
            self.stdout.write(
                f"{verb} {len(doomed)} backup file(s) older than {config.backup_retention_days} days "
                f"(keeping the newest {config.backup_keep_verified} verified)."
            )
            for summary in summaries:
                self.stdout.write(backup_line(summary))
            if local_copies:
                self.stdout.write(
                    f"{verb} {len(local_copies)} local cop(ies) older than {config.backup_local_copy_days} days "
                    f"(the bucket keeps its own): {', '.join(report['local_copies'])}"
                )
            if orphans.ours:
                self.stdout.write(
                    f"{verb} {len(orphans.ours)} file(s) of this site's failed or pruned backups: "
                    f"{', '.join(orphans.ours)}"
                )
            if orphans.unproven:
                self.stdout.write(
                    f"Kept {len(orphans.unproven)} backup file(s) no record here proves this site's own (another "
                    f"site's, or backups whose records a restore took back): {', '.join(orphans.unproven)}"
                )
