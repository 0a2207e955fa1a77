"""History models: what happened, recorded once; the admin shows them read-only."""

from __future__ import annotations

import time

from django.db import models
from django.utils import timezone


class RunRecord(models.Model):
    """What every recorded run has (backups, restores, migration runs, PITR runs): its times and why it failed.

    `finish()` ends a run in one place: status, error, finish time and duration together, so no kind of run can end
    without its duration or leave `running` behind because one code path forgot a field.
    """

    started_at = models.DateTimeField(db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        abstract = True

    def ended(self, status: str, error: str = "", *, started: float | None = None, **fields) -> dict:
        """Set the fields that end this run and return them; `started` is a `time.monotonic()` of its start."""
        now = timezone.now()
        values = {"status": status, "error": error, "finished_at": now, **fields}
        if any(field.name == "duration_seconds" for field in self._meta.concrete_fields):
            elapsed = time.monotonic() - started if started is not None else (now - self.started_at).total_seconds()
            values["duration_seconds"] = round(elapsed, 3)
        for name, value in values.items():
            setattr(self, name, value)
        return values

    def finish(self, status: str, error: str = "", *, started: float | None = None, **fields) -> None:
        """End this run with one UPDATE of the fields that end it (fields saved elsewhere meanwhile are kept)."""
        values = self.ended(status, error, started=started, **fields)
        type(self)._default_manager.filter(pk=self.pk).update(**values)


class BackupRecord(RunRecord):
    """One backup: how it was taken, where it is, what it held, and whether a restore of it was proven."""

    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    class Trigger(models.TextChoices):
        COMMAND = "command"
        SCHEDULE = "schedule"
        PRE_MIGRATION = "pre_migration", "pre-migration"
        PRE_RESTORE = "pre_restore", "pre-restore"
        ADMIN = "admin"

    class Verification(models.TextChoices):
        UNVERIFIED = "unverified"
        PASSED = "passed"
        FAILED = "failed"

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING, db_index=True)
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.COMMAND)
    database_alias = models.CharField(max_length=100, default="default")
    database_name = models.CharField(max_length=200, blank=True)
    server_version = models.CharField(max_length=100, blank=True)
    filename = models.CharField(max_length=500, blank=True)
    storage = models.CharField(max_length=200, blank=True)
    size_bytes = models.BigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    compressed = models.BooleanField(default=False)
    encrypted = models.BooleanField(default=False)
    row_counts = models.JSONField(default=dict, blank=True)
    signature = models.CharField(
        max_length=64,
        blank=True,
        help_text="HMAC-SHA256 of what the backup is (name, database, start, sha256, size, row counts), made with "
        "DATABASE_BACKUP_SIGNING_KEY: a key not in the database.",
    )
    verified_at = models.DateTimeField(null=True, blank=True)
    verification = models.CharField(
        max_length=16, choices=Verification.choices, default=Verification.UNVERIFIED, db_index=True
    )
    verification_details = models.JSONField(default=dict, blank=True)
    file_deleted_at = models.DateTimeField(null=True, blank=True, help_text="When retention removed the file.")
    # The copy in DATABASE_BACKUP_DIR kept beside a bucket (DATABASE_BACKUP_LOCAL_COPY_DAYS): same bytes, same name.
    local_copy = models.CharField(max_length=500, blank=True, help_text="Local copy beside the bucket's file.")
    local_copy_deleted_at = models.DateTimeField(null=True, blank=True, help_text="When retention removed it.")
    local_copy_verified_at = models.DateTimeField(
        null=True, blank=True, help_text="When verification last found its sha256 equal to the recorded one."
    )

    class Meta:
        ordering = ["-started_at"]
        get_latest_by = "started_at"
        # Beyond viewing the history: each of these reads or changes the database, so each is granted on its own.
        permissions = [
            ("verify_backuprecord", "Can verify backups (restores into a scratch database)"),
            ("restore_backuprecord", "Can restore a backup into the live database"),
            ("download_backuprecord", "Can download backup files"),
        ]

    def __str__(self) -> str:
        return f"backup #{self.pk} {self.status} {self.started_at:%Y-%m-%d %H:%M:%S}"


class RestoreRecord(RunRecord):
    """One restore of a backup into the live database, with the safety backup that can undo it."""

    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        REFUSED = "refused"

    backup = models.ForeignKey(BackupRecord, on_delete=models.PROTECT, related_name="restores")
    safety_backup = models.ForeignKey(BackupRecord, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    started_at = models.DateTimeField()
    duration_seconds = None  # a restore's record has none (its backup's and safety backup's have theirs)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    requested_by = models.CharField(max_length=200, blank=True)
    database_name = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"restore of backup #{self.backup_id} {self.status}"


class MigrationRun(RunRecord):
    """One guarded `migrate` or rollback: who ran it, what it planned, what the analyzer found, how it ended."""

    class Kind(models.TextChoices):
        APPLY = "apply"
        ROLLBACK = "rollback"

    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        REFUSED = "refused"

    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.APPLY)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING, db_index=True)
    database_alias = models.CharField(max_length=100, default="default")
    requested_by = models.CharField(max_length=200, blank=True, help_text="OS or admin user.")
    host = models.CharField(max_length=255, blank=True)
    reason = models.TextField(blank=True)
    target = models.CharField(max_length=300, blank=True, help_text="app_label[.migration], 'zero', or all pending.")
    plan = models.JSONField(default=list, blank=True, help_text="The migrations to apply or unapply, in order.")
    findings = models.JSONField(default=list, blank=True)
    allowed_unsafe = models.BooleanField(default=False)
    migrations = models.JSONField(default=list, blank=True, help_text="Each step: name, seconds, attempts, outcome.")
    backup = models.ForeignKey(BackupRecord, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        ordering = ["-started_at"]
        get_latest_by = "started_at"

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} {self.status} {self.started_at:%Y-%m-%d %H:%M:%S}"


class Alert(models.Model):
    """One episode of a rule firing for a subject: firing until its signal clears, then resolved."""

    class Severity(models.TextChoices):
        WARNING = "warning"
        CRITICAL = "critical"

    class State(models.TextChoices):
        FIRING = "firing"
        RESOLVED = "resolved"

    rule = models.CharField(max_length=100, db_index=True)
    subject = models.CharField(max_length=200, blank=True, help_text="What it is about: an alias, a check, a run.")
    severity = models.CharField(max_length=16, choices=Severity.choices, db_index=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.FIRING, db_index=True)
    message = models.TextField(help_text="What happened and what to do.")
    value = models.FloatField(null=True, blank=True)
    threshold = models.FloatField(null=True, blank=True)
    fired_at = models.DateTimeField(db_index=True)
    last_seen_at = models.DateTimeField(help_text="The last evaluation that saw it firing.")
    resolved_at = models.DateTimeField(null=True, blank=True)
    flaps = models.PositiveIntegerField(default=0, help_text="Re-fired within the cooldown after resolving.")
    notified_state = models.CharField(max_length=16, blank=True, help_text="The last state sent to the channels.")
    notified_at = models.DateTimeField(null=True, blank=True)
    notifications = models.PositiveIntegerField(default=0)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-fired_at"]
        permissions = [("acknowledge_alert", "Can acknowledge alerts (they are not sent again)")]
        constraints = [
            # Deduplication: one open alert per rule and subject, whatever evaluates concurrently.
            models.UniqueConstraint(
                fields=["rule", "subject"], condition=models.Q(state="firing"), name="dbops_alert_one_firing"
            )
        ]

    def __str__(self) -> str:
        return f"{self.rule}[{self.subject}] {self.state}"


class OperationsSample(models.Model):
    """One evaluation's view of an alias (latency, pool), kept for the dashboard's charts."""

    at = models.DateTimeField(db_index=True)
    alias = models.CharField(max_length=100, default="default")
    queries = models.PositiveIntegerField(default=0)
    p50_ms = models.FloatField(null=True, blank=True)
    p95_ms = models.FloatField(null=True, blank=True)
    p99_ms = models.FloatField(null=True, blank=True)
    slow_queries = models.PositiveIntegerField(default=0)
    pool_in_use = models.PositiveIntegerField(null=True, blank=True)
    pool_max = models.PositiveIntegerField(null=True, blank=True)
    processes = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-at"]
        get_latest_by = "at"

    def __str__(self) -> str:
        return f"{self.alias} {self.at:%H:%M:%S} p95 {self.p95_ms}"


class Dashboard(Alert):
    """The admin's "Database operations" dashboard (a proxy: it stores nothing of its own)."""

    class Meta:
        proxy = True
        verbose_name = "dashboard"
        verbose_name_plural = "dashboard"


class DatabaseInsights(Alert):
    """The admin's "Database insights" page (a proxy: it stores nothing; its permissions guard the page and actions)."""

    class Meta:
        proxy = True
        default_permissions = ()
        verbose_name = "database insights"
        verbose_name_plural = "database insights"
        permissions = [
            ("view_database_insights", "Can view database insights and the running statements"),
            ("cancel_query", "Can cancel a running statement"),
            ("terminate_query", "Can terminate a database session"),
        ]


class PitrRun(RunRecord):
    """One pgBackRest operation driven by dbops: a physical backup, a verification or a point-in-time restore."""

    class Kind(models.TextChoices):
        BACKUP = "backup"
        VERIFY = "verify"
        RESTORE = "restore"

    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        REFUSED = "refused"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING, db_index=True)
    stanza = models.CharField(max_length=100)
    backup_type = models.CharField(max_length=8, blank=True, help_text="full, diff or incr.")
    label = models.CharField(max_length=100, blank=True, help_text="pgBackRest's backup label.")
    target_time = models.DateTimeField(null=True, blank=True, help_text="Restore target.")
    data_dir = models.CharField(max_length=500, blank=True, help_text="Where a restore wrote the cluster.")
    requested_by = models.CharField(max_length=200, blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-started_at"]
        verbose_name = "PITR run"

    def __str__(self) -> str:
        return f"pitr {self.kind} #{self.pk} {self.status}"
