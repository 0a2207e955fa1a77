import getpass
import json
import time

from django.core.management.base import CommandError

from dbops.alerting.lifecycle import acknowledge, evaluate
from dbops.conf import get_config
from dbops.management.commands._database import EXIT_NOT_FOUND, DatabaseCommand, record_id
from dbops.models import Alert


class Command(DatabaseCommand):
    help = (
        "Alerts. evaluate: run every rule once (or --loop every --interval seconds; for cron, systemd or a "
        "Kubernetes Deployment) and notify the channels; list: open alerts (exit 1 when any is firing); "
        "ack ID: acknowledge an open alert (exit 4 when an id names no open alert)."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["evaluate", "list", "ack"], help="What to do.")
        parser.add_argument("ids", nargs="*", type=record_id, help="With ack: the alert ids.")
        parser.add_argument("--loop", action="store_true", help="With evaluate: keep evaluating until stopped.")
        parser.add_argument(
            "--interval",
            type=int,
            default=None,
            help="Seconds between evaluations (default DBOPS_ALERT_EVALUATE_INTERVAL).",
        )
        parser.add_argument("--no-notify", action="store_true", help="With evaluate: update alerts, send nothing.")
        parser.add_argument("--all", action="store_true", help="With list: resolved alerts too (latest 50).")
        parser.add_argument("--by", default="", help="With ack: who acknowledges (default: the OS user).")
        parser.add_argument("--json", action="store_true", help="Print JSON.")

    def handle(self, *args, action, **options):
        if action == "evaluate":
            self._evaluate(options)
        elif action == "list":
            self._list(options)
        else:
            if not options["ids"]:
                raise CommandError("ack needs at least one alert id", returncode=2)
            ids = options["ids"]
            firing = set(Alert.objects.filter(pk__in=ids, state=Alert.State.FIRING).values_list("pk", flat=True))
            count = acknowledge(Alert.objects.filter(pk__in=firing), by=options["by"] or getpass.getuser())
            if count:
                self.stdout.write(f"{count} alert(s) acknowledged.")
            missing = [f"#{pk}" for pk in ids if pk not in firing]
            if missing:
                raise CommandError(
                    f"No open alert {', '.join(missing)}: see manage.py alerts list.", returncode=EXIT_NOT_FOUND
                )

    def _evaluate(self, options):
        interval = options["interval"] or get_config().alerts.evaluate_interval
        while True:
            started = time.monotonic()
            result = evaluate(send=not options["no_notify"])
            if options["json"]:
                self.stdout.write(json.dumps(result, sort_keys=True))
            else:
                firing = ", ".join(result["firing"]) or "none"
                self.stdout.write(f"{result['signals']} signal(s); firing: {firing}")
                for change in result.get("changed", []):
                    self.stdout.write(f"  {change}")
                for rule, error in result["errors"].items():
                    self.stderr.write(self.style.WARNING(f"  rule {rule} could not be evaluated: {error}"))
            if not options["loop"]:
                return
            time.sleep(max(0.0, interval - (time.monotonic() - started)))

    def _list(self, options):
        alerts = Alert.objects.all() if options["all"] else Alert.objects.filter(state=Alert.State.FIRING)
        alerts = list(alerts.order_by("-fired_at")[:50])
        rows = [
            {
                "id": a.pk,
                "rule": a.rule,
                "subject": a.subject,
                "severity": a.severity,
                "state": a.state,
                "fired_at": a.fired_at.isoformat(),
                "resolved_at": a.resolved_at.isoformat() if a.resolved_at else None,
                "acknowledged_by": a.acknowledged_by or None,
                "message": a.message,
            }
            for a in alerts
        ]
        if options["json"]:
            self.stdout.write(json.dumps(rows, indent=2))
        else:
            for row in rows:
                self.stdout.write(
                    f"#{row['id']:<5} {row['severity']:<8} {row['state']:<8} {row['rule']}[{row['subject']}] "
                    f"since {row['fired_at'][:19]}: {row['message']}"
                )
            if not rows:
                self.stdout.write("No open alerts.")
        if any(row["state"] == Alert.State.FIRING for row in rows):
            raise CommandError(f"{sum(r['state'] == 'firing' for r in rows)} alert(s) firing", returncode=1)
