"""Shared rendering for the backup commands: one line per backup, or JSON."""

import json

from django.template.defaultfilters import filesizeformat


def render(command, data, *, as_json: bool) -> None:
    if as_json:
        command.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str))


BACKUP_HEADER = (
    f"{'ID':<6} {'STARTED (UTC)':<19}  {'AGE':>10}  {'STATUS':<9} {'TRIGGER':<13} {'SIZE':>10}  VERIFICATION"
)


def backup_line(summary: dict) -> str:
    size = filesizeformat(summary["size_bytes"]) if summary["size_bytes"] is not None else "-"
    file_state = (" (file pruned)" if summary["file_deleted"] else "") + (
        " + local copy" if summary["local_copy"] else ""
    )
    return (
        f"#{summary['id']:<5} {summary['started_at'][:19]}  {summary['age_hours']:>8.1f} h  {summary['status']:<9} "
        f"{summary['trigger']:<13} {size:>10}  {summary['verification']}{file_state}"
    )
