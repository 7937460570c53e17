"""Email and webhook notifications of alert events, with signed webhooks and retries."""

from __future__ import annotations

import hashlib
import hmac
import json
from functools import partial

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from apps.common.errors import InvalidInput
from apps.common.tasks import task_send
from apps.projects.services import audit_record

from ..models import Alert, AlertRule, Notification
from .common import _require


def _payload(alert: Alert, event: str) -> dict:
    rule = alert.rule
    return {"event": f"alert.{event}", "alert_id": alert.pk, "rule": rule.name, "metric": rule.metric,
            "comparator": rule.comparator, "threshold": rule.threshold, "value": alert.value,
            "resolved_value": alert.resolved_value, "severity": alert.severity, "status": alert.status,
            "deployment": alert.deployment.slug, "project": alert.deployment.project.slug,
            "message": alert.message, "opened_at": alert.opened_at.isoformat(),
            "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None}


def _notify(alert: Alert, event: str) -> None:
    rule = alert.rule
    suppressed = bool(alert.snoozed_until and alert.snoozed_until > timezone.now())
    payload = _payload(alert, event)
    for channel in rule.channels:
        if channel == "email":
            targets = list(rule.emails) or ([rule.owner.email] if rule.owner and rule.owner.email else [])
            target = ",".join(targets)
        else:
            target = rule.webhook_url
        if not target:
            continue
        n = Notification.objects.create(alert=alert, channel=channel, event=event, target=target[:500],
                                        payload=payload, status=Notification.Status.SUPPRESSED if suppressed
                                        else Notification.Status.PENDING)
        if not suppressed:
            transaction.on_commit(partial(_enqueue_notification, n.pk))


def _enqueue_notification(notification_id: int) -> None:
    task_send("workers.monitoring.notification_deliver", notification_id)


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    """``X-Slipway-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" keyed by the rule secret>``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def alert_rule_webhook_test(*, rule: AlertRule, actor) -> Notification:
    """Send a test payload to the rule's webhook, signed like a real one, through the same delivery as
    alerts (a worker; one attempt, no retries): the configuration page shows the status code or error."""
    _require(actor, rule.deployment, "monitoring.configure")
    if not rule.webhook_url:
        raise InvalidInput("This rule has no webhook URL to test", field="webhook_url")
    dep = rule.deployment
    payload = {"event": "alert.test", "test": True, "rule": rule.name, "metric": rule.metric,
               "comparator": rule.comparator, "threshold": rule.threshold, "severity": rule.severity,
               "deployment": dep.slug, "project": dep.project.slug, "sent_by": actor.username,
               "message": f"Test of the webhook of “{rule.name}” on {dep.slug}: no alert is open",
               "sent_at": timezone.now().isoformat()}
    with transaction.atomic():
        n = Notification.objects.create(rule=rule, channel="webhook", event="test", target=rule.webhook_url[:500],
                                        payload=payload)
        audit_record(actor=actor, verb="monitoring.alert_rule_webhook_test", project=dep.project, target=rule,
                     details={"url": rule.webhook_url, "notification_id": n.pk})
        transaction.on_commit(partial(_enqueue_notification, n.pk))
    return n


def notification_deliver(*, notification_id: int, final_attempt: bool = False) -> bool:
    """Send one notification. Returns True when delivered (or nothing to do, or a test that failed: tests
    are tried once), False to retry."""
    n = Notification.objects.select_related("alert__rule", "rule").filter(pk=notification_id).first()
    if n is None or n.status in (Notification.Status.DELIVERED, Notification.Status.SUPPRESSED):
        return True
    n.attempts += 1
    rule = n.alert.rule if n.alert_id else n.rule
    final_attempt = final_attempt or n.event == "test"
    try:
        if n.channel == "email":
            subject = f"[Slipway {n.payload.get('severity')}] {n.payload.get('event')}: {rule.name}"
            send_mail(subject, json.dumps(n.payload, indent=2), None, n.target.split(","))
            n.response_code = None
        else:
            import urllib.request

            body = json.dumps(n.payload, sort_keys=True).encode()
            ts = str(int(timezone.now().timestamp()))
            req = urllib.request.Request(n.target, data=body, method="POST", headers={
                "Content-Type": "application/json", "User-Agent": "Slipway-Webhook/1",
                "X-Slipway-Event": n.payload.get("event", ""), "X-Slipway-Timestamp": ts,
                "X-Slipway-Delivery": str(n.pk), "X-Slipway-Signature": webhook_signature(rule.webhook_secret, ts, body)})
            with urllib.request.urlopen(req, timeout=settings.MONITORING_WEBHOOK_TIMEOUT_S) as resp:  # noqa: S310
                n.response_code = resp.status
        n.status, n.delivered_at, n.error = Notification.Status.DELIVERED, timezone.now(), ""
        n.save()
        return True
    except Exception as exc:  # noqa: BLE001 - any failure is recorded and retried
        n.response_code = getattr(exc, "code", None)
        n.error = f"{type(exc).__name__}: {exc}"[:500]
        n.status = Notification.Status.FAILED if final_attempt else Notification.Status.RETRYING
        n.save()
        return n.event == "test"
