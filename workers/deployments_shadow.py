"""Celery tasks of shadow runs, and the two adapters that hand monitoring's facts to deployments.

Tasks call one service each. The adapters (``monitoring_outcome_labels``, ``monitoring_open_critical_alerts``)
live here, in the glue layer, because deployments may not import monitoring (it sits above); the settings
``SHADOW_OUTCOME_SOURCE`` / ``PROMOTION_ALERT_SOURCE`` name them (see apps/deployments/providers.py).
"""

from celery import shared_task

from apps.deployments import shadow
from apps.projects.services import job_run


@shared_task(name="workers.deployments_shadow.shadow_tick", acks_late=True, ignore_result=True)
def shadow_tick():
    """Beat: every active shadow run scores the newly logged traffic and refreshes its comparison."""
    shadow.shadow_tick()


@shared_task(name="workers.deployments_shadow.shadow_run_score", acks_late=True, ignore_result=True)
def shadow_run_score(job_id):
    """On demand (a Job shown in the page)."""
    job_run(job_id=job_id, body=lambda job: shadow.shadow_run_score(job=job))


@shared_task(name="workers.deployments_shadow.shadow_run_score_now", acks_late=True, ignore_result=True)
def shadow_run_score_now(run_id):
    """Right after a run starts (no Job row: the run's own counters show the progress)."""
    shadow.shadow_run_score_pending(run_id=run_id)


# --- adapters: monitoring → deployments ----------------------------------------------------------


def monitoring_outcome_labels(*, deployment, request_ids) -> dict:
    from apps.monitoring.models import Outcome

    out = {}
    ids = list(request_ids)
    for start in range(0, len(ids), 5000):
        chunk = ids[start:start + 5000]
        for rid, label in Outcome.objects.filter(deployment=deployment, request_id__in=chunk).values_list(
                "request_id", "label"):
            out[str(rid)] = label
    return out


def monitoring_open_critical_alerts(*, deployment) -> list[str]:
    from apps.monitoring.models import Alert

    return [f"{a.severity}: {a.message}" for a in Alert.objects.filter(
        deployment=deployment, severity="critical", status__in=["open", "acknowledged"]).order_by("-opened_at")]
