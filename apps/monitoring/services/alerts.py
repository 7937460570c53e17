"""Alert rules, their evaluation over windows, and acknowledging/snoozing alerts."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.common.errors import Conflict, InvalidInput, NotFound
from apps.deployments.models import Deployment
from apps.projects.permissions import can
from apps.projects.services import audit_record

from ..models import Alert, AlertRule, AlertStatus, Comparator, MonitoringWindow, Severity
from .common import COMPARE, METRICS, SNOOZE_MAX_MINUTES, _require
from .notifications import _notify

# --- alerts ----------------------------------------------------------------------------------------


def window_metric(window: MonitoringWindow, metric: str) -> float | None:
    if metric.startswith("drift:"):
        row = next((f for f in window.features.all() if f.feature == metric[6:]), None)
        return row.score if row else None
    if metric.startswith("estimated_"):
        return (window.estimated.get(metric[10:]) or {}).get("value")
    if metric.startswith("realized_"):
        return (window.realized.get(metric[9:]) or {}).get("value")
    if metric == "skew_rate":
        return max(window.skew.values()) if window.skew else None
    if metric == "feature_sla_breaches":
        fresh = window.feature_freshness or {}
        return float(sum(1 for f in fresh.values() if f.get("breached"))) if fresh else None
    if metric == "feature_staleness_ratio":
        ratios = [(f["age_seconds"] / f["sla_seconds"]) if f.get("age_seconds") is not None else math.inf
                  for f in (window.feature_freshness or {}).values() if f.get("sla_seconds")]
        return max(ratios) if ratios else None
    value = getattr(window, metric, None)
    return float(value) if value is not None else None


def _validate_metric(metric: str) -> None:
    if metric not in METRICS and not (metric.startswith("drift:") and len(metric) > 6):
        raise InvalidInput(f"Unknown metric {metric!r}", field="metric")


def alert_rule_create(*, deployment: Deployment, actor, name: str, metric: str, comparator: str, threshold: float,
                      consecutive: int = 1, severity: str = "warning", channels=(), emails=(), webhook_url: str = "",
                      webhook_secret: str = "", cooldown_minutes: int = 60, owner=None) -> AlertRule:
    _require(actor, deployment, "monitoring.configure")
    _validate_metric(metric)
    if comparator not in Comparator.values:
        raise InvalidInput("comparator must be gt, gte, lt or lte", field="comparator")
    if consecutive < 1:
        raise InvalidInput("At least one window", field="consecutive")
    channels = list(channels)
    if set(channels) - {"email", "webhook"}:
        raise InvalidInput("Channels are email and webhook", field="channels")
    if "webhook" in channels and not (webhook_url and webhook_secret):
        raise InvalidInput("A webhook needs a URL and a signing secret", field="webhook_url")
    rule = AlertRule.objects.create(deployment=deployment, name=name, metric=metric, comparator=comparator,
                                    threshold=threshold, consecutive=consecutive, severity=severity,
                                    channels=channels, emails=list(emails), webhook_url=webhook_url,
                                    webhook_secret=webhook_secret, cooldown_minutes=cooldown_minutes,
                                    owner=owner or actor, created_by=actor)
    audit_record(actor=actor, verb="monitoring.alert_rule_create", project=deployment.project, target=rule,
                 details={"metric": metric, "comparator": comparator, "threshold": threshold})
    return rule


def alert_rules_evaluate(*, deployment: Deployment, now: datetime | None = None) -> list[Alert]:
    """Open alerts for rules breached N windows in a row (no duplicate while one is active, none
    during the cooldown after a resolution); resolve active alerts whose metric recovered. The partial
    trailing window is shown but never alerts: it has not got its rows yet."""
    now = now or timezone.now()
    rules = list(AlertRule.objects.filter(deployment=deployment, enabled=True))
    if not rules:
        return []
    windows = list(MonitoringWindow.objects.filter(deployment=deployment, partial=False).prefetch_related("features")
                   .order_by("-end", "-id")[:100])
    opened = []
    for rule in rules:
        values = [(w, v) for w in windows if (v := window_metric(w, rule.metric)) is not None]
        if not values:
            continue
        check = COMPARE[rule.comparator]
        latest_window, latest = values[0]
        active = Alert.objects.filter(rule=rule, status__in=[AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED]).first()
        if active is not None:
            if not check(latest, rule.threshold):
                _alert_resolve(active, latest, now)
            continue
        recent = values[: rule.consecutive]
        if len(recent) < rule.consecutive or not all(check(v, rule.threshold) for _, v in recent):
            continue
        last = Alert.objects.filter(rule=rule, status=AlertStatus.RESOLVED).order_by("-resolved_at").first()
        if last and last.resolved_at and now < last.resolved_at + timedelta(minutes=rule.cooldown_minutes):
            continue
        alert = _alert_open(rule, latest_window, latest, now, snoozed_until=last.snoozed_until if last else None)
        if alert:
            opened.append(alert)
    return opened


def _alert_open(rule: AlertRule, window, value: float, now: datetime, snoozed_until=None) -> Alert | None:
    msg = (f"{rule.name}: {rule.metric} = {value:.4g} {Comparator(rule.comparator).label} {rule.threshold:g} "
           f"for {rule.consecutive} window(s) on {rule.deployment.slug}")
    try:
        with transaction.atomic():
            alert = Alert.objects.create(rule=rule, deployment=rule.deployment, severity=rule.severity, value=value,
                                         message=msg[:500], window=window, opened_at=now,
                                         snoozed_until=snoozed_until if snoozed_until and snoozed_until > now else None)
            _notify(alert, "opened")
    except IntegrityError:
        return None  # another worker opened it first
    return alert


def _alert_resolve(alert: Alert, value: float, now: datetime) -> None:
    with transaction.atomic():
        updated = Alert.objects.filter(pk=alert.pk, status__in=[AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED]).update(
            status=AlertStatus.RESOLVED, resolved_at=now, resolved_value=value)
        if updated:
            alert.refresh_from_db()
            _notify(alert, "resolved")


def _alert_for_user(*, user, alert_id: int, action: str) -> Alert:
    alert = Alert.objects.select_related("deployment__project", "rule").filter(pk=alert_id).first()
    if alert is None or not can(user, alert.deployment.project, "monitoring.view"):
        raise NotFound("No such alert")
    _require(user, alert.deployment, action)
    return alert


def alert_acknowledge(*, alert: Alert, actor) -> Alert:
    _require(actor, alert.deployment, "alert.acknowledge")
    if alert.status != AlertStatus.OPEN:
        raise Conflict(f"Only open alerts can be acknowledged (this one is {alert.status})")
    alert.status, alert.acknowledged_by, alert.acknowledged_at = AlertStatus.ACKNOWLEDGED, actor, timezone.now()
    alert.save(update_fields=["status", "acknowledged_by", "acknowledged_at"])
    audit_record(actor=actor, verb="monitoring.alert_acknowledge", project=alert.deployment.project, target=alert)
    return alert


def alert_snooze(*, alert: Alert, actor, minutes: int) -> Alert:
    _require(actor, alert.deployment, "alert.acknowledge")
    if not 1 <= minutes <= SNOOZE_MAX_MINUTES:
        raise InvalidInput("Snooze between 1 minute and 14 days", field="minutes")
    alert.snoozed_until = timezone.now() + timedelta(minutes=minutes)
    alert.save(update_fields=["snoozed_until"])
    audit_record(actor=actor, verb="monitoring.alert_snooze", project=alert.deployment.project, target=alert,
                 details={"minutes": minutes})
    return alert


# --- alert rules: edit and mute (the monitoring configuration page; the same checks as alert_rule_create) ---


def alert_rule_update(*, rule: AlertRule, actor, name: str, metric: str, comparator: str, threshold: float,
                      consecutive: int = 1, severity: str = "warning", channels=(), emails=(), webhook_url: str = "",
                      webhook_secret: str = "", cooldown_minutes: int = 60) -> AlertRule:
    """Change a rule. An empty ``webhook_secret`` keeps the stored one (it is never shown again)."""
    deployment = rule.deployment
    _require(actor, deployment, "monitoring.configure")
    _validate_metric(metric)
    if comparator not in Comparator.values:
        raise InvalidInput("comparator must be gt, gte, lt or lte", field="comparator")
    if consecutive < 1:
        raise InvalidInput("At least one window", field="consecutive")
    if severity not in Severity.values:
        raise InvalidInput(f"severity must be one of {', '.join(Severity.values)}", field="severity")
    channels = list(channels)
    if set(channels) - {"email", "webhook"}:
        raise InvalidInput("Channels are email and webhook", field="channels")
    secret = webhook_secret or rule.webhook_secret
    if "webhook" in channels and not (webhook_url and secret):
        raise InvalidInput("A webhook needs a URL and a signing secret", field="webhook_url")
    if "email" in channels and not list(emails):
        raise InvalidInput("E-mail alerts need at least one address", field="emails")
    with transaction.atomic():
        rule.name, rule.metric, rule.comparator, rule.threshold = name, metric, comparator, threshold
        rule.consecutive, rule.severity, rule.channels, rule.emails = consecutive, severity, channels, list(emails)
        rule.webhook_url, rule.webhook_secret, rule.cooldown_minutes = webhook_url, secret, cooldown_minutes
        rule.save()
        audit_record(actor=actor, verb="monitoring.alert_rule_update", project=deployment.project, target=rule,
                     details={"metric": metric, "comparator": comparator, "threshold": threshold,
                              "channels": channels})
    return rule


def alert_rule_enabled_set(*, rule: AlertRule, actor, enabled: bool) -> AlertRule:
    """Mute (``enabled=False``: the rule opens no alert and sends nothing) or unmute a rule."""
    _require(actor, rule.deployment, "monitoring.configure")
    if rule.enabled != enabled:
        rule.enabled = enabled
        rule.save(update_fields=["enabled"])
        audit_record(actor=actor, verb="monitoring.alert_rule_unmute" if enabled else "monitoring.alert_rule_mute",
                     project=rule.deployment.project, target=rule, details={"name": rule.name})
    return rule
