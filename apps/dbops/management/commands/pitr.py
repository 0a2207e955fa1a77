import datetime
import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from dbops.backups.pitr import (
    BACKUP_TYPES,
    PitrError,
    PitrRefused,
    PitrTarget,
    backup,
    reap_interrupted_runs,
    record_journal,
    restore,
    setup_check,
    status,
    verify,
)


class Command(BaseCommand):
    help = (
        "Point-in-time recovery through pgBackRest, run on the database host. setup-check [--fix]: what archiving "
        "needs and the exact settings to add; backup [--type full|diff|incr]; status: backups and the recoverable "
        "window; verify: pgbackrest verify; restore --target-time T [--to DIR]: to a new data directory, or in "
        "place (server stopped, --delta). Exit 0 ok, 1 refused or check failing, 2 failed."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["setup-check", "backup", "status", "verify", "restore"])
        parser.add_argument("--fix", action="store_true", help="setup-check: write the config file, create the stanza.")
        parser.add_argument("--type", choices=BACKUP_TYPES, default="full", help="backup: full (default), diff, incr.")
        parser.add_argument("--target-time", help="restore: ISO time with a zone, e.g. 2026-11-27T10:15:00+00:00.")
        parser.add_argument("--to", help="restore: a new, empty data directory (default: in place, server stopped).")
        parser.add_argument(
            "--noinput", action="store_true", help="restore: do not ask to confirm an in-place restore."
        )
        parser.add_argument("--json", action="store_true", help="Print JSON.")

    def handle(self, *args, action, **options):
        try:
            target = PitrTarget.from_settings()
            recorded = record_journal(target)
            if recorded:
                self.stderr.write(f"{recorded} run(s) made while the database was down are now in the history")
            handler = getattr(self, f"_{action.replace('-', '_')}")
            handler(target, options)
        except PitrRefused as exc:
            raise CommandError(str(exc), returncode=1) from None
        except PitrError as exc:
            raise CommandError(str(exc), returncode=2) from None

    def _progress(self, options):
        return (lambda message: None) if options["json"] else (lambda message: self.stderr.write(f"… {message}"))

    def _print(self, data, options, lines):
        if options["json"]:
            self.stdout.write(json.dumps(data, indent=2, default=str))
        else:
            for line in lines:
                self.stdout.write(line)

    def _setup_check(self, target, options):
        lines = setup_check(target, fix=options["fix"], progress=self._progress(options))
        text = [
            f"{self.style.SUCCESS('ok  ') if line.ok else self.style.ERROR('MISS')} {line.name:<18} {line.detail}"
            + ("" if line.ok else f"\n      fix: {line.fix}")
            for line in lines
        ]
        self._print([line.as_dict() for line in lines], options, text)
        if not all(line.ok for line in lines):
            raise CommandError("point-in-time recovery is not ready (see the fixes above)", returncode=1)

    def _backup(self, target, options):
        run = backup(target, backup_type=options["type"], progress=self._progress(options))
        self._print(
            {"id": run.pk, "label": run.label, "type": run.backup_type, "seconds": run.duration_seconds},
            options,
            [f"pitr backup #{run.pk} {run.backup_type} {run.label} in {run.duration_seconds:.1f} s"],
        )

    def _status(self, target, options):
        reap_interrupted_runs()
        report = {**status(target), "repository": target.repo_location}
        lines = [f"stanza {report['stanza']}: {report['status']} (repository {report['repository']})"]
        lines += [f"  {b['label']:<28} {b['type']:<5} ended {b['stop']:%Y-%m-%d %H:%M:%S}" for b in report["backups"]]
        earliest, latest = report["earliest_restorable"], report["latest_restorable"]
        lines.append(
            f"recoverable window: {earliest or '-'} .. {latest or '-'} (WAL {report['wal_min']} .. {report['wal_max']})"
        )
        if report["archiver_failing"]:
            lines.append(self.style.WARNING(f"archiving is failing: {report['archiver_failing']}"))
        self._print(report, options, lines)
        if not report["backups"]:
            raise CommandError(
                f"the repository {report['repository']} holds no backup: there is nothing to restore from "
                "(manage.py pitr backup --type full)",
                returncode=1,
            )

    def _verify(self, target, options):
        run = verify(target, progress=self._progress(options))
        self._print({"id": run.pk, "status": run.status}, options, [f"pitr verify #{run.pk}: {run.status}"])

    def _restore(self, target, options):
        if not options["target_time"]:
            raise CommandError("restore needs --target-time", returncode=2)
        try:
            when = datetime.datetime.fromisoformat(options["target_time"])
        except ValueError:
            raise CommandError(f"--target-time {options['target_time']!r} is not an ISO time", returncode=2) from None
        data_dir = Path(options["to"]) if options["to"] else None
        if data_dir is None and not options["noinput"]:
            answer = input(f"Replace the cluster in {target.pg_path} with its state at {when}? Type the stanza name: ")
            if answer.strip() != target.stanza:
                raise CommandError("not confirmed: nothing was changed", returncode=1)
        run = restore(target, when, data_dir=data_dir, progress=self._progress(options))
        later = "" if run.pk else " (recorded in the history by the next pitr command once the server answers)"
        self._print(
            {"id": run.pk, "status": run.status, "start_with": run.details.get("start_with"), "recorded": bool(run.pk)},
            options,
            [f"restored to {when}: the cluster reached it{later}; start it with: {run.details.get('start_with')}"],
        )
