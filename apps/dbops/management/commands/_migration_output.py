"""Shared rendering for the migration commands: findings and plans as text, or JSON."""

import json

from django.core.management.base import CommandError

from dbops.exceptions import MigrationFailed, MigrationRefused, MigrationSelectionError
from dbops.migrations_safety.analysis import SafetyReport
from dbops.migrations_safety.catalog import Severity
from dbops.migrations_safety.rewrites import operations_code

STYLE_BY_SEVERITY = {Severity.BLOCK: "ERROR", Severity.WARN: "WARNING", Severity.INFO: "HTTP_INFO"}


def write_json(command, data: dict) -> None:
    command.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str))


def write_report(command, report: SafetyReport, *, verbose: bool = True, rewrites: dict | None = None) -> None:
    """Print each migration's grade and findings (why and the safe alternative unless `verbose` is off).

    With `rewrites` ("app.name" -> Rewrite), a migration that has one is followed by its safe form's operations.
    """
    command.stdout.write(
        f"Migration safety: {len(report.migrations)} migration(s) on {report.alias} "
        f"(PostgreSQL {report.server_version}), analyzed in {report.analysis_seconds:.3f} s"
    )
    for migration in report.migrations:
        grade = migration.grade
        label = grade.label.upper() if grade else "ok"
        style = getattr(command.style, STYLE_BY_SEVERITY[grade]) if grade else command.style.SUCCESS
        command.stdout.write(f"  {migration.key:<60} {style(label)}")
        for finding in migration.findings:
            where = f" {finding.table}" if finding.table else ""
            state = f" [suppressed: {finding.suppressed}]" if finding.suppressed else ""
            command.stdout.write(
                f"    {finding.severity.label.upper():<5} {finding.code} {finding.rule.title}{where}{state}"
            )
            command.stdout.write(f"          {finding.operation}: {finding.detail}")
            if verbose and finding.counts:
                command.stdout.write(f"          why: {finding.rule.why}")
                command.stdout.write(f"          instead: {finding.safe_alternative}")
        rewrite = (rewrites or {}).get(migration.key)
        if rewrite is not None:
            write_rewrite_code(command, rewrite)
    summary = report.as_dict()["summary"]
    command.stdout.write(
        f"Summary: {summary['block']} block, {summary['warn']} warn, {summary['info']} info, "
        f"{summary['suppressed']} suppressed."
    )


def write_rewrite_code(command, rewrite) -> None:
    """Print a rewrite's migrations as operations code (manage.py migration_rewrite writes the files)."""
    command.stdout.write(
        command.style.SUCCESS(
            f"    safe form ({len(rewrite.now)} migration(s)"
            + (" + one for a later release" if rewrite.later else "")
            + f"; manage.py migration_rewrite {rewrite.app_label} {rewrite.original} writes it):"
        )
    )
    for migration in [*rewrite.now, *([rewrite.later] if rewrite.later else [])]:
        atomic = "" if migration.atomic else "  (atomic = False)"
        command.stdout.write(f"      # {migration.name}{atomic}")
        for line in operations_code(migration).splitlines():
            command.stdout.write(f"      {line}")


def write_plan(command, outcome) -> None:
    for step in outcome.plan:
        verb = "unapply" if step.backwards else "apply"
        command.stdout.write(f"  {verb:<8} {step.migration}{'' if step.atomic else '  (non-atomic)'}")
        for what in step.irreversible:
            command.stdout.write(command.style.ERROR(f"           irreversible: {what}"))
        for what in step.will_fail:
            command.stdout.write(command.style.ERROR(f"           will fail: {what}"))
        for what in step.destroys:
            command.stdout.write(command.style.WARNING(f"           {what}"))


def write_run(command, outcome) -> None:
    run = outcome.run
    for step in run.migrations:
        seconds = f"{step['seconds']:.3f} s" if step["seconds"] is not None else "-"
        command.stdout.write(
            f"  {step['outcome']:<9} {step['migration']:<60} {seconds:>10}  attempts {step['attempts']}"
        )
    backup = f", pre-migration backup #{run.backup_id}" if run.backup_id else ""
    command.stdout.write(f"{run.kind} run #{run.pk} {run.status} in {run.duration_seconds or 0:.2f} s{backup}.")


def render_outcome(command, outcome, *, as_json: bool, heading: str) -> None:
    """Print a guarded run: findings (when analyzed), the plan, and how each step went."""
    if as_json:
        write_json(command, outcome.as_dict())
        return
    if not outcome.plan:
        command.stdout.write("Nothing to do: every migration is applied.")
        return
    if outcome.report is not None:
        write_report(command, outcome.report, verbose=False)
    command.stdout.write(f"{heading} ({len(outcome.plan)} migration(s), in order):")
    write_plan(command, outcome)
    if not outcome.dry_run and outcome.run.status != "running":
        write_run(command, outcome)


def run_guarded(command, service, options: dict, *, heading: str, **arguments) -> None:
    """Call a guarded run service with the shared options; render it; map refusals to exit 1, failures to 2."""
    as_json = options["json"]
    try:
        outcome = service(
            alias=options["database"],
            reason=options["reason"],
            backup=not options["no_backup"],
            dry_run=options["dry_run"],
            progress=(lambda message: None) if as_json else command.stderr.write,
            **arguments,
        )
    except MigrationSelectionError as exc:
        raise CommandError(str(exc), returncode=2) from None
    except (MigrationRefused, MigrationFailed) as exc:
        if exc.outcome is not None:
            render_outcome(command, exc.outcome, as_json=as_json, heading=heading)
        raise CommandError(str(exc), returncode=1 if isinstance(exc, MigrationRefused) else 2) from None
    render_outcome(command, outcome, as_json=as_json, heading=heading)
