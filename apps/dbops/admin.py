"""Read-only history admins: backups, restores and migration runs are recorded, never edited. Actions call services."""

from __future__ import annotations

import psycopg
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import DatabaseError, connections
from django.http import (
    FileResponse,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.shortcuts import get_object_or_404
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince

from dbops.admin_base import ReadOnlyAdmin
from dbops.alerting.lifecycle import acknowledge
from dbops.backups import logical as backups
from dbops.backups.failures import storage_failure
from dbops.conf import get_config
from dbops.dashboard.data import dashboard_data
from dbops.exceptions import BackupError
from dbops.models import Alert, BackupRecord, Dashboard, MigrationRun, PitrRun, RestoreRecord

BADGE_COLORS = {
    "critical": "#c62828",
    "warning": "#ef6c00",
    "firing": "#c62828",
    "resolved": "#2e7d32",
    "succeeded": "#2e7d32",
    "passed": "#2e7d32",
    "running": "#1565c0",
    "unverified": "#757575",
    "failed": "#c62828",
    "refused": "#ef6c00",
}


def badge(value: str):
    color = BADGE_COLORS.get(value, "#757575")
    return format_html(
        '<span style="background:{};color:#fff;padding:1px 7px;border-radius:8px;font-size:11px">{}</span>',
        color,
        value,
    )


def html_table(headers, rows):
    """Render rows (escaped) under headers as a plain HTML table."""
    head = format_html_join("", "<th>{}</th>", ((h,) for h in headers))
    body = format_html_join(
        "", "<tr>{}</tr>", ((format_html_join("", "<td>{}</td>", ((cell,) for cell in row)),) for row in rows)
    )
    return format_html("<table><tr>{}</tr>{}</table>", head, body)


class HistoryAdmin(ReadOnlyAdmin):
    """History is never edited: every field read-only, the outcome as a badge; an empty list says what fills it."""

    empty_hint = ""

    def lookup_allowed(self, lookup, value, request=None):
        # A regular expression from the query string is the database's to compile: a bad one was a 500.
        if lookup.rsplit("__", 1)[-1] in ("regex", "iregex"):
            return False
        return super().lookup_allowed(lookup, value, request)

    def changelist_view(self, request, extra_context=None):
        if any("\x00" in key or "\x00" in value for key, values in request.GET.lists() for value in values):
            return HttpResponseBadRequest("A filter holds a NUL character.", content_type="text/plain")
        try:
            response = super().changelist_view(request, {**(extra_context or {}), "empty_hint": self.empty_hint})
            if hasattr(response, "render"):
                response.render()  # the list is read while rendering: a filter the database refuses fails here
        except (DatabaseError, ValueError, OverflowError) as exc:
            return HttpResponseBadRequest(
                f"These filters cannot be applied ({type(exc).__name__}): remove them from the address.",
                content_type="text/plain",
            )
        return response

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        return badge(obj.status)


def duration(seconds: float | None) -> str:
    """Say a duration the way an operator reads it: 1.7 s, 2 min 05 s, 1 h 02 min."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def verify_unavailable_here(record: BackupRecord) -> str:
    """Say why this host cannot verify `record` (its identity file is elsewhere), or ""."""
    if not record.encrypted:
        return ""
    identity = get_config().backup_encryption_identity_file
    if identity is not None and identity.is_file():
        return ""
    where = f"{identity} is not on this host" if identity else "DATABASE_BACKUP_ENCRYPTION_IDENTITY_FILE is not set"
    return (
        f"the backup is encrypted and {where}. Web hosts need only the public recipient; verify where the "
        f"identity is kept: manage.py backup_verify --id {record.pk} (docs/recovery.md, encryption)."
    )


@admin.register(BackupRecord)
class BackupRecordAdmin(HistoryAdmin):
    list_display = ("id", "started", "age", "status_badge", "trigger", "size", "verification_badge", "file")
    list_filter = ("status", "verification", "trigger")
    search_fields = ("filename", "database_name", "sha256", "error")
    date_hierarchy = "started_at"
    actions = ["verify_selected", "restore_selected"]
    change_form_template = "admin/dbops/backuprecord/change_form.html"
    empty_hint = (
        "No backups yet. Run manage.py backup (or schedule manage.py backup --if-due: ops/ has cron, systemd and "
        "Kubernetes jobs)."
    )
    fieldsets = (
        ("Outcome", {"fields": (("status_badge", "trigger"), ("started_at", "finished_at", "duration"), "error")}),
        (
            "File",
            {
                "fields": (
                    "file",
                    ("size", "storage"),
                    "sha256",
                    ("compressed", "encrypted"),
                    "file_deleted_at",
                    ("local_copy", "local_copy_verified_at", "local_copy_deleted_at"),
                )
            },
        ),
        ("Verification", {"fields": (("verification_badge", "verified_at"), "verification_summary")}),
        ("Contents", {"fields": (("database_name", "server_version"), "row_count_table")}),
    )
    readonly_fields = [
        str(name)
        for _, options in fieldsets
        for row in options["fields"]
        for name in (row if isinstance(row, tuple) else (row,))
    ]

    @admin.display(description="started", ordering="started_at")
    def started(self, obj):
        return f"{timezone.localtime(obj.started_at):%Y-%m-%d %H:%M}"

    @admin.display(description="age")
    def age(self, obj):
        return f"{timesince(obj.started_at, timezone.now())} ago"

    @admin.display(description="took")
    def duration(self, obj):
        return duration(obj.duration_seconds)

    @admin.display(description="verification", ordering="verification")
    def verification_badge(self, obj):
        return badge(obj.verification)

    @admin.display(description="size", ordering="size_bytes")
    def size(self, obj):
        return filesizeformat(obj.size_bytes) if obj.size_bytes is not None else "-"

    @admin.display(description="file")
    def file(self, obj):
        if obj.file_deleted_at:
            return "pruned"
        if not obj.filename:
            return "-"
        return format_html('<a href="{}">download</a>', reverse("admin:dbops_backuprecord_download", args=[obj.pk]))

    @admin.display(description="details")
    def verification_summary(self, obj):
        details = obj.verification_details or {}
        rows = [
            (label, details[key])
            for key, label in (
                ("tables", "tables restored"),
                ("rows", "rows restored"),
                ("restore_seconds", "scratch restore took (s)"),
                ("error", "failure"),
                ("not_run", "not verified"),
            )
            if key in details
        ]
        rows += [
            (f"mismatch in {table}", f"{counts['recorded']} recorded, {counts['restored']} restored")
            for table, counts in sorted(details.get("mismatches", {}).items())
        ]
        if rows:
            return html_table(("", ""), rows)
        return "Not verified yet: use Verify above." if obj.verified_at is None else "No details recorded."

    @admin.display(description="rows per table")
    def row_count_table(self, obj):
        counts = sorted((obj.row_counts or {}).items())
        if not counts:
            return "-"
        return html_table(
            ("table", "rows"),
            [*((table, f"{rows:,}") for table, rows in counts), ("total", f"{sum(obj.row_counts.values()):,}")],
        )

    def has_verify_permission(self, request):
        return request.user.has_perm("dbops.verify_backuprecord")

    def has_restore_permission(self, request):
        return request.user.has_perm("dbops.restore_backuprecord")

    def has_download_permission(self, request):
        return request.user.has_perm("dbops.download_backuprecord")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        record = self.get_object(request, object_id)
        usable = record is not None and record.status == BackupRecord.Status.SUCCEEDED and not record.file_deleted_at
        unavailable = usable and self.has_verify_permission(request) and verify_unavailable_here(record)
        extra_context = {
            **(extra_context or {}),
            "verify_unavailable": unavailable,
            "can_verify": usable and self.has_verify_permission(request) and not unavailable,
            "can_restore": usable and self.has_restore_permission(request),
            "can_download": usable and bool(record.filename) and self.has_download_permission(request),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def _verify(self, request, record) -> None:
        try:
            record = backups.verify_backup(record)
        except BackupError as exc:
            self.message_user(request, f"Backup #{record.pk}: not verified: {exc}", messages.ERROR)
            return
        level = messages.SUCCESS if record.verification == "passed" else messages.ERROR
        detail = record.verification_details.get("error", f"{record.verification_details.get('rows', 0)} rows")
        self.log_change(request, record, f"Verified: {record.verification}")
        self.message_user(request, f"Backup #{record.pk}: verification {record.verification} ({detail})", level)

    @admin.action(description="Verify selected backups (restore into a scratch database)", permissions=["verify"])
    def verify_selected(self, request, queryset):
        for record in queryset.filter(status=BackupRecord.Status.SUCCEEDED):
            self._verify(request, record)

    @admin.action(description="Restore the selected backup into the live database…", permissions=["restore"])
    def restore_selected(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one backup to restore.", messages.WARNING)
            return None
        return HttpResponseRedirect(reverse("admin:dbops_backuprecord_restore", args=[queryset.get().pk]))

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/download/", view(self.download_view), name="dbops_backuprecord_download"),
            path("<int:pk>/restore/", view(self.restore_view), name="dbops_backuprecord_restore"),
            path("<int:pk>/verify/", view(self.verify_view), name="dbops_backuprecord_verify"),
            *super().get_urls(),
        ]

    def verify_view(self, request, pk):
        if not self.has_verify_permission(request):
            raise PermissionDenied
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        record = get_object_or_404(BackupRecord, pk=pk, status=BackupRecord.Status.SUCCEEDED)
        self._verify(request, record)
        return HttpResponseRedirect(reverse("admin:dbops_backuprecord_change", args=[record.pk]))

    def download_view(self, request, pk):
        if not self.has_download_permission(request):
            raise PermissionDenied
        record = get_object_or_404(BackupRecord, pk=pk)
        if record.status != BackupRecord.Status.SUCCEEDED or not record.filename or record.file_deleted_at:
            return HttpResponse(
                f"Backup #{record.pk} has no file to download ({record.status}"
                f"{', pruned' if record.file_deleted_at else ''}).",
                status=404,
                content_type="text/plain",
            )
        try:
            handle = backups.backup_storage().open(record.filename, "rb")
        except FileNotFoundError:
            return HttpResponse(
                f"Backup #{record.pk}'s file {record.filename} is not in the backup storage (moved or deleted "
                "outside dbops).",
                status=404,
                content_type="text/plain",
            )
        except Exception as exc:
            failure = storage_failure(exc)
            if failure is None:
                raise
            return HttpResponse(f"{failure[0].upper()}{failure[1:]}.", status=503, content_type="text/plain")
        self.log_change(request, record, "Downloaded the backup file")
        return FileResponse(handle, as_attachment=True, filename=record.filename.rsplit("/", 1)[-1])

    def restore_view(self, request, pk):
        if not self.has_restore_permission(request):
            raise PermissionDenied
        record = get_object_or_404(BackupRecord, pk=pk, status=BackupRecord.Status.SUCCEEDED)
        database = connections[record.database_alias].settings_dict["NAME"]
        if request.method == "POST":
            if request.POST.get("confirm_database", "").strip() != database:
                self.message_user(
                    request, "The typed database name did not match: nothing was changed.", messages.ERROR
                )
                return HttpResponseRedirect(request.path)
            self.log_change(request, record, f"Restore into {database} requested")
            try:
                restore = backups.restore_backup(record, requested_by=f"admin:{request.user.get_username()}")
            except BackupError as exc:
                self.message_user(request, f"{exc} — the live database was not touched.", messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"Restored backup #{record.pk} into {database}. Safety backup #{restore.safety_backup_id} "
                    "can undo it.",
                    messages.SUCCESS,
                )
            return HttpResponseRedirect(reverse("admin:dbops_backuprecord_changelist"))
        try:
            consequences = backups.restore_consequences(record)
        except (DatabaseError, psycopg.Error) as exc:
            consequences = [
                f"What the restore changes could not be read from the live database ({type(exc).__name__})."
            ]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Restore backup #{record.pk}",
            "record": record,
            "database": database,
            "consequences": consequences,
        }
        return TemplateResponse(request, "admin/dbops/backuprecord/restore_confirmation.html", context)


@admin.register(RestoreRecord)
class RestoreRecordAdmin(HistoryAdmin):
    empty_hint = "No restores yet: open a backup and use Restore…, or run manage.py backup_restore --id N."
    list_display = ("id", "started_at", "backup", "safety_backup", "status_badge", "database_name", "requested_by")
    list_filter = ("status",)
    search_fields = ("database_name", "requested_by", "error")
    readonly_fields = [f.name for f in RestoreRecord._meta.fields]


@admin.register(MigrationRun)
class MigrationRunAdmin(HistoryAdmin):
    empty_hint = (
        "No guarded migration runs yet: manage.py migration_apply and migration_rollback record one each "
        "(plain migrate does not)."
    )
    list_display = (
        "id",
        "started_at",
        "kind",
        "status_badge",
        "target",
        "steps",
        "duration_seconds",
        "findings_count",
        "allowed_unsafe",
        "requested_by",
        "host",
    )
    list_filter = ("kind", "status", "allowed_unsafe", "database_alias")
    search_fields = ("target", "reason", "requested_by", "host", "error")
    date_hierarchy = "started_at"
    fields = (
        ("kind", "status", "database_alias"),
        ("started_at", "finished_at", "duration_seconds"),
        ("requested_by", "host"),
        "target",
        "reason",
        ("allowed_unsafe", "backup"),
        "error",
        "plan_list",
        "step_table",
        "finding_table",
    )
    readonly_fields = [name for row in fields for name in (row if isinstance(row, tuple) else (row,))]

    @admin.display(description="migrations")
    def steps(self, obj):
        return len(obj.plan)

    @admin.display(description="findings")
    def findings_count(self, obj):
        counted = [f for f in obj.findings if not f.get("suppressed")]
        blocks = sum(1 for f in counted if f.get("severity") == "block")
        return f"{len(counted)} ({blocks} block)" if blocks else len(counted)

    @admin.display(description="plan")
    def plan_list(self, obj):
        return format_html("<ol>{}</ol>", format_html_join("", "<li>{}</li>", ((name,) for name in obj.plan)))

    @admin.display(description="migrations run")
    def step_table(self, obj):
        return html_table(
            ("migration", "outcome", "seconds", "attempts", "error"),
            (
                (
                    s.get("migration"),
                    badge(s.get("outcome", "")),
                    s.get("seconds"),
                    s.get("attempts"),
                    s.get("error", ""),
                )
                for s in obj.migrations
            ),
        )

    @admin.display(description="findings")
    def finding_table(self, obj):
        return html_table(
            ("severity", "code", "migration", "table", "finding", "suppressed because"),
            (
                (
                    f.get("severity"),
                    f.get("code"),
                    f.get("migration"),
                    f.get("table"),
                    f"{f.get('title')}: {f.get('detail')}",
                    f.get("suppressed") or "",
                )
                for f in obj.findings
            ),
        )


@admin.register(Alert)
class AlertAdmin(HistoryAdmin):
    empty_hint = (
        "No alerts. manage.py alerts evaluate --loop (or every minute from cron) raises them; breaker, backup and "
        "migration events raise theirs at once."
    )
    list_display = (
        "id",
        "rule",
        "subject",
        "severity_badge",
        "state_badge",
        "fired_at",
        "resolved_at",
        "flaps",
        "notifications",
        "acknowledged_by",
    )
    list_filter = ("severity", "state", "rule")
    search_fields = ("rule", "subject", "message")
    date_hierarchy = "fired_at"
    readonly_fields = [f.name for f in Alert._meta.fields]
    actions = ["acknowledge_selected"]

    @admin.display(description="severity", ordering="severity")
    def severity_badge(self, obj):
        return badge(obj.severity)

    @admin.display(description="state", ordering="state")
    def state_badge(self, obj):
        return badge(obj.state)

    def has_acknowledge_permission(self, request):
        return request.user.has_perm("dbops.acknowledge_alert")

    @admin.action(description="Acknowledge selected firing alerts", permissions=["acknowledge"])
    def acknowledge_selected(self, request, queryset):
        alerts = list(queryset)
        count = acknowledge(alerts, by=request.user.get_username())
        for alert in Alert.objects.filter(pk__in=[a.pk for a in alerts], acknowledged_by=request.user.get_username()):
            self.log_change(request, alert, "Acknowledged")
        self.message_user(request, f"{count} alert(s) acknowledged: they stay open until their signal clears.")


@admin.register(PitrRun)
class PitrRunAdmin(HistoryAdmin):
    empty_hint = "No point-in-time recovery runs: set up pgBackRest (docs/recovery.md), then manage.py pitr backup."
    list_display = (
        "id",
        "started_at",
        "kind",
        "status_badge",
        "backup_type",
        "label",
        "target_time",
        "duration_seconds",
    )
    list_filter = ("kind", "status", "backup_type")
    search_fields = ("label", "error", "data_dir")
    readonly_fields = [f.name for f in PitrRun._meta.fields]


@admin.register(Dashboard)
class DashboardAdmin(ReadOnlyAdmin):
    """The operator dashboard ("Database operations" in the admin index): staff only, read-only."""

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    def get_urls(self):
        # The dashboard is one page. A proxy of Alert would otherwise answer /<id>/change/ and /<id>/history/ with
        # any alert to any staff member, past the alert admin's own permissions.
        name = f"{self.opts.app_label}_{self.opts.model_name}_changelist"
        return [path("", self.admin_site.admin_view(self.changelist_view), name=name)]

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {**self.admin_site.each_context(request), "title": "Database operations", "data": dashboard_data()}
        return TemplateResponse(request, "admin/dbops/dashboard/dashboard.html", context)


# The "Database insights" page registers itself (dbops.insights.admin: its findings, cancel and terminate).
from dbops.insights import admin as _insights_admin  # noqa: E402, F401
