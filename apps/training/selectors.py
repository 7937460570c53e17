"""Reads of retraining policies shared by pages and the API (callers resolve the deployment first)."""

from __future__ import annotations

from django.utils import timezone

from apps.deployments.models import Deployment
from apps.monitoring.models import AlertRule
from apps.releases.models import PromotionRequest

from .models import PolicyFiring, RetrainingPolicy


def retraining_policy_for(*, deployment: Deployment) -> RetrainingPolicy | None:
    return RetrainingPolicy.objects.filter(deployment=deployment).select_related(
        "deployment__project", "created_by", "updated_by").first()


def firing_list(*, policy: RetrainingPolicy):
    return policy.firings.select_related("training_job__job", "version", "alert", "actor", "training_job__model")


def firing_get(*, policy: RetrainingPolicy, pk: int) -> PolicyFiring | None:
    return firing_list(policy=policy).filter(pk=pk).first()


def policy_state(*, policy: RetrainingPolicy) -> dict:
    """What the policy would say right now: new labels and, if a trigger fired now, whether a guard stops it."""
    from .services.retraining import _why_not, new_label_count

    new_labels, _ = new_label_count(policy=policy)
    return {"new_labels": new_labels, "blocked_by": _why_not(policy, timezone.now(), new_labels=new_labels)}


def trigger_labels(*, policy: RetrainingPolicy) -> list[str]:
    from apps.monitoring.models import Comparator

    rules = {r.pk: r for r in AlertRule.objects.filter(deployment=policy.deployment)}
    out = []
    for t in policy.triggers or []:
        if t.get("kind") == "alert_rule":
            r = rules.get(t.get("rule_id"))
            out.append(f"Alert rule “{r.name}” ({r.metric} {Comparator(r.comparator).label} {r.threshold:g})" if r
                       else "A deleted alert rule")
        else:
            out.append(f"{t['metric']} {Comparator(t['comparator']).label} {t['threshold']:g} for {t['windows']} "
                       "window(s) in a row")
    return out


def policies_for_project(*, project):
    deployments = list(Deployment.objects.filter(project=project).select_related("production_version__model"))
    policies = {p.deployment_id: p for p in RetrainingPolicy.objects.filter(deployment__project=project)}
    return [{"deployment": d, "policy": policies.get(d.pk),
             "last": policies[d.pk].firings.first() if d.pk in policies else None} for d in deployments]


def promotion_request_statuses(*, firings) -> dict[int, str]:
    """Current status (open / promoted / rejected / withdrawn) of the promotion requests firings opened."""
    ids = [f.promotion_request_id for f in firings if f.promotion_request_id]
    if not ids:
        return {}
    return dict(PromotionRequest.objects.filter(pk__in=ids).values_list("pk", "status"))
