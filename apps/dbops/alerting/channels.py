"""Where alerts go: the log (always), e-mail to ADMINS, a webhook. A failing channel is logged, never raised."""

from __future__ import annotations

import base64
import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request

from django.conf import settings
from django.core.mail import mail_admins

from dbops.conf import get_config, mask_url
from dbops.logs import log_event

logger = logging.getLogger("dbops.alerts")


def alert_payload(alert) -> dict:
    """Return the JSON body of a notification (webhook) and the fields of the log line."""
    return {
        "id": alert.pk,
        "rule": alert.rule,
        "subject": alert.subject,
        "severity": alert.severity,
        "state": alert.state,
        "message": alert.message,
        "value": alert.value,
        "threshold": alert.threshold,
        "fired_at": alert.fired_at.isoformat() if alert.fired_at else None,
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
        "site": (settings.ALLOWED_HOSTS or ["dbops"])[0],
    }


def _title(payload: dict) -> str:
    return f"[{payload['severity'].upper()}] {payload['rule']} {payload['state']} ({payload['subject']})"


def _log(payload: dict) -> None:
    level = logging.INFO if payload["state"] == "resolved" else logging.WARNING
    log_event(logger, level, "alert", **payload)


def _email(payload: dict) -> None:
    if not settings.ADMINS:
        return
    mail_admins(_title(payload), f"{payload['message']}\n\n{json.dumps(payload, indent=2, default=str)}")


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """An alert goes to the configured URL only: a redirect could send it (and its details) to any host."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise urllib.error.HTTPError(req.full_url, code, "redirect refused", headers, fp)


_NO_REDIRECTS = urllib.request.build_opener(_RefuseRedirects)


def webhook_request_parts(url: str) -> tuple[str, dict[str, str]]:
    """Split credentials out of a webhook URL: (the URL without them, headers carrying them as basic auth).

    `https://user:password@hooks.example/x` is a common way to hand a receiver its credentials; urllib would take
    "password@host" for a host and port, fail, and print them in its error.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, {}
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    user = urllib.parse.unquote(parts.username or "")
    password = urllib.parse.unquote(parts.password or "")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc)), {"Authorization": f"Basic {token}"}


def _webhook(payload: dict) -> None:
    config = get_config().alerts
    if not config.webhook_url:
        return
    url, auth = webhook_request_parts(config.webhook_url)
    body = {"text": f"{_title(payload)}: {payload['message']}"} if config.webhook_format == "slack" else payload
    data = json.dumps(body, default=str).encode()
    last_error: Exception | None = None
    for attempt in range(config.webhook_retries + 1):
        if attempt:
            time.sleep(min(0.5 * 2 ** (attempt - 1), 5.0))
        request = urllib.request.Request(  # noqa: S310 - http(s) validated by the settings
            url, data=data, headers={"Content-Type": "application/json", **auth}, method="POST"
        )
        try:
            with _NO_REDIRECTS.open(request, timeout=config.webhook_timeout) as response:
                response.read()
            return
        except urllib.error.HTTPError as exc:
            last_error = exc
            if exc.code < 500 and exc.code != 429:
                break  # the receiver refuses this body: retrying will not help
        except OSError as exc:
            last_error = exc
    raise RuntimeError(f"webhook failed after {attempt + 1} attempt(s): {mask_url(str(last_error))}")


CHANNELS = (("log", _log), ("email", _email), ("webhook", _webhook))


def notify(alert) -> list[str]:
    """Send `alert` to every configured channel; return the names of the channels that failed."""
    payload = alert_payload(alert)
    failed = []
    for name, send in CHANNELS:
        try:
            send(payload)
        except Exception as exc:
            failed.append(name)
            log_event(
                logger, logging.ERROR, "alert_channel_failed", channel=name, rule=alert.rule, error=str(exc)[:300]
            )
    return failed
