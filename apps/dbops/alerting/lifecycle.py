"""The alert lifecycle: signals become `Alert` episodes (firing -> resolved), deduplicated, cooled down, notified.

- One open alert per rule and subject (a partial unique index enforces it under concurrent evaluators).
- A signal that fires again within DBOPS_ALERT_COOLDOWN_SECONDS of its resolution reopens the same alert
  (counted as a flap) instead of starting a new one. Channels hear of a flapping warning again only once the
  cooldown since their last notification has passed; a critical alert they were told had resolved is sent again
  whenever it fires (a second outage is news).
- Resolution is sent only to channels that were told it was firing. Acknowledged alerts are not re-sent.
- Evaluation runs out of the request path (`manage.py alerts evaluate`, one-shot or looping); breaker
  transitions, backup outcomes and migration runs raise their rules at once: in a background thread in a
  process that serves requests (a request never waits for a channel), before returning in a command run from
  the shell (its daemon thread would die with it, leaving the alert to the next evaluation). When the database
  itself is down, alerts cannot be stored: they are sent anyway (once per episode, tracked in the cache until
  the signal is seen clear) and recorded by a later evaluation.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import threading
from collections.abc import Iterable

from django.core.cache import caches
from django.db import DatabaseError, IntegrityError, connections, transaction
from django.utils import timezone

from dbops.alerting.channels import notify
from dbops.alerting.rules import CRITICAL, RULE_BY_NAME, RULES, Context, Signal
from dbops.conf import get_config
from dbops.database.pool import direct_connection, serves_requests
from dbops.database.rows import one_row
from dbops.logs import log_event
from dbops.models import Alert, OperationsSample

logger = logging.getLogger("dbops.alerts")

# pg_advisory_lock key of the alert evaluator ("dbops" in ASCII, then 3): one evaluation at a time.
ALERT_LOCK_KEY = 0x64626F707303


def _cooldown() -> datetime.timedelta:
    return datetime.timedelta(seconds=get_config().alerts.cooldown_seconds)


def _send(alert: Alert, now: datetime.datetime) -> None:
    notify(alert)
    alert.notified_state = alert.state
    alert.notified_at = now
    alert.notifications += 1


def _open_alert(signal: Signal, now: datetime.datetime) -> Alert:
    """Return the alert this firing signal belongs to: the open one, a reopened recent one, or a new one."""
    fields = {"severity": signal.severity, "message": signal.message, "value": signal.value, "last_seen_at": now}
    fields["threshold"] = signal.threshold
    alert = Alert.objects.filter(rule=signal.rule, subject=signal.subject, state=Alert.State.FIRING).first()
    if alert is None:
        recent = (
            Alert.objects.filter(rule=signal.rule, subject=signal.subject, resolved_at__gte=now - _cooldown())
            .order_by("-resolved_at")
            .first()
        )
        if recent is not None:
            alert = recent
            alert.state, alert.resolved_at, alert.flaps = Alert.State.FIRING, None, recent.flaps + 1
        else:
            try:
                with transaction.atomic():
                    return Alert.objects.create(rule=signal.rule, subject=signal.subject, fired_at=now, **fields)
            except IntegrityError:  # another evaluator opened it first
                alert = Alert.objects.get(rule=signal.rule, subject=signal.subject, state=Alert.State.FIRING)
    for name, value in fields.items():
        setattr(alert, name, value)
    return alert


def process_signal(signal: Signal, *, now: datetime.datetime | None = None, send: bool = True) -> Alert | None:
    """Apply one signal to the alert lifecycle; return the alert it touched (None when nothing is open)."""
    now = now or timezone.now()
    if signal.firing:
        alert = _open_alert(signal, now)
        cooled = alert.notified_at is None or now - alert.notified_at >= _cooldown()
        # Channels told a critical alert resolved must hear that it fires again (a second outage is news);
        # a flapping warning waits out the cooldown.
        told_resolved = signal.severity == CRITICAL and alert.notified_state == Alert.State.RESOLVED
        if (
            send
            and alert.notified_state != Alert.State.FIRING
            and alert.acknowledged_at is None
            and (cooled or told_resolved)
        ):
            _send(alert, now)
        alert.save()
        return alert
    open_alert = Alert.objects.filter(rule=signal.rule, subject=signal.subject, state=Alert.State.FIRING).first()
    if open_alert is None:
        return None
    alert = open_alert
    alert.state, alert.resolved_at = Alert.State.RESOLVED, now
    if send and alert.notified_state == Alert.State.FIRING:
        _send(alert, now)
    alert.save()
    return alert


def _unrecorded_key(signal: Signal) -> str:
    return f"dbops:alert-unrecorded:{signal.rule}:{signal.subject}"


def notify_unrecorded(signal: Signal) -> bool:
    """Send a firing signal the database cannot store (it is down), once per episode; True if sent.

    The episode ends when the signal is seen clear again (`forget_unrecorded`), so the next outage is sent
    again however soon it follows; while it lasts, the cooldown bounds repeats.
    """
    if not signal.firing:
        return False
    try:
        cache = caches[get_config().breaker.cache_alias]
        if not cache.add(_unrecorded_key(signal), 1, timeout=max(1, int(_cooldown().total_seconds()))):
            return False
    except Exception:  # noqa: S110 - no cache either: send, better twice than never
        pass
    now = timezone.now()
    transient = Alert(
        rule=signal.rule,
        subject=signal.subject,
        severity=signal.severity,
        state=Alert.State.FIRING,
        message=f"{signal.message} (not recorded: the database is unavailable)",
        value=signal.value,
        threshold=signal.threshold,
        fired_at=now,
        last_seen_at=now,
    )
    notify(transient)
    return True


def forget_unrecorded(signal: Signal) -> None:
    """End the episode of an unrecorded firing signal: it is clear now."""
    with contextlib.suppress(Exception):
        caches[get_config().breaker.cache_alias].delete(_unrecorded_key(signal))


def apply_signals(signals: Iterable[Signal], *, send: bool = True) -> list[Alert]:
    """Process signals in order; a database that fails mid-way still gets the firing ones sent."""
    touched = []
    for signal in signals:
        if not signal.firing:
            forget_unrecorded(signal)
        try:
            alert = process_signal(signal, send=send)
        except DatabaseError:
            if send:
                notify_unrecorded(signal)
            continue
        if alert is not None:
            touched.append(alert)
    return touched


@contextlib.contextmanager
def _evaluation_lock():
    """Yield True while holding the evaluator's advisory lock, False when another evaluator has it."""
    with direct_connection("default", timeout=float(get_config().health.probe_timeout)) as conn:
        held = one_row(conn.execute("SELECT pg_try_advisory_lock(%s)", [ALERT_LOCK_KEY]))[0]
        try:
            yield held
        finally:
            if held:
                with contextlib.suppress(Exception):
                    conn.execute("SELECT pg_advisory_unlock(%s)", [ALERT_LOCK_KEY])


def _collect(ctx: Context) -> tuple[list[Signal], dict[str, str]]:
    signals: list[Signal] = []
    errors: dict[str, str] = {}
    for rule in RULES:
        try:
            signals.extend(rule.evaluate(ctx))
        except Exception as exc:
            errors[rule.name] = f"{type(exc).__name__}: {str(exc).strip()[:200]}"
    return signals, errors


def _record_samples(ctx: Context, now: datetime.datetime) -> None:
    for alias, entries in ctx.databases():
        judged = [e["queries"] for e in entries if e["queries"]["count"]]
        pools = [e["pool"] for e in entries if e.get("pool")]
        OperationsSample.objects.create(
            at=now,
            alias=alias,
            queries=sum(q["count"] for q in judged),
            p50_ms=max((q["p50_ms"] for q in judged), default=None),
            p95_ms=max((q["p95_ms"] for q in judged), default=None),
            p99_ms=max((q["p99_ms"] for q in judged), default=None),
            slow_queries=sum(e["slow"] for e in entries),
            pool_in_use=sum(p.get("in_use", 0) for p in pools) if pools else None,
            pool_max=sum(p.get("pool_max", 0) for p in pools) if pools else None,
            processes=len(entries),
        )
    retention = datetime.timedelta(days=get_config().alerts.sample_retention_days)
    OperationsSample.objects.filter(at__lt=now - retention).delete()


def evaluate(*, send: bool = True) -> dict:
    """Evaluate every rule once; apply the signals; record a dashboard sample. Returns a summary."""
    now = timezone.now()
    ctx = Context()
    signals, errors = _collect(ctx)
    try:
        with _evaluation_lock() as held:
            if not held:
                return {"skipped": "another evaluation holds the lock", "signals": 0, "firing": [], "errors": errors}
            touched = apply_signals(signals, send=send)
            _record_samples(ctx, now)
    except Exception as exc:  # the database is down: send what fires, store nothing
        if send:
            for signal in signals:
                notify_unrecorded(signal)
        errors["store"] = f"{type(exc).__name__}: {str(exc).strip()[:200]}"
        touched = []
    firing = Alert.objects.filter(state=Alert.State.FIRING) if "store" not in errors else []
    return {
        "signals": len(signals),
        "changed": [f"{a.rule}[{a.subject}] {a.state}" for a in touched],
        "firing": [f"{a.rule}[{a.subject}] {a.severity}" for a in firing],
        "errors": errors,
    }


def acknowledge(alerts: Iterable[Alert], by: str) -> int:
    """Acknowledge open alerts: they stay firing until their signal clears, but are not re-sent."""
    now = timezone.now()
    ids = [a.pk for a in alerts if a.state == Alert.State.FIRING and a.acknowledged_at is None]
    return Alert.objects.filter(pk__in=ids).update(acknowledged_at=now, acknowledged_by=by[:200])


def _on_event(signals_of) -> None:
    """Apply an event's rule now: in a daemon thread where requests are served, in this thread in a command."""
    if not get_config().alerts.events:
        return

    def run(*, in_thread: bool) -> None:
        try:
            apply_signals(list(signals_of(Context())))
        except Exception as exc:
            log_event(logger, logging.ERROR, "alert_event_failed", error=type(exc).__name__)
        finally:
            if in_thread:
                connections.close_all()

    if serves_requests():
        threading.Thread(target=run, kwargs={"in_thread": True}, daemon=True, name="dbops-alert-event").start()
    else:
        run(in_thread=False)


def on_breaker_transition(sender, old, new, reason, **kwargs) -> None:
    _on_event(RULE_BY_NAME["breaker_open"].evaluate)


def on_backup_finished(sender, record, **kwargs) -> None:
    _on_event(RULE_BY_NAME["backup_failed"].evaluate)


def on_migration_run_finished(sender, run, **kwargs) -> None:
    _on_event(RULE_BY_NAME["migration_run_failed"].evaluate)
