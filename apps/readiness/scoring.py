"""Pure readiness scoring: item results → pass / warn / fail, a score, the ML Test Score and a stage.

No Django here (tested without a database). ``apps.readiness.assess`` gathers the figures from the
other apps' records and calls these functions.

- ``grade`` turns a figure into a status against two documented thresholds.
- ``readiness_score``: 0–100, the mean over the items (pass 1, warn ½, fail 0).
- ``ml_test_score``: Breck et al. 2017 — per test 1 point when automated (decided by the portal from
  its records, or answered "automated"), ½ when done by hand (answered "manual", or a portal "warn"),
  0 otherwise; a group's score is the sum, the final score the minimum over the four groups.
- ``stage_for``: the furthest step the records prove: prototype → registered → shadow → production
  → monitored.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

PASS, WARN, FAIL = "pass", "warn", "fail"
STATUS_POINTS = {PASS: 1.0, WARN: 0.5, FAIL: 0.0}

STAGES = ("prototype", "registered", "shadow", "production", "monitored")
STAGE_HELP = {
    "prototype": "No validated model version yet: the model lives in a notebook.",
    "registered": "A validated version is in the registry, but nothing is deployed.",
    "shadow": "A deployment or a shadow run exists, but no production traffic is answered yet.",
    "production": "A live deployment answered predictions through the standard API in the last 7 days.",
    "monitored": "In production, with drift checks on schedule and alert rules that notify someone.",
}

# Answers people give. MLTS tests: Breck's "automated" (1 point) / "manual" (½ point) / no.
MLTS_ANSWERS = (("automated", "Yes — automated, runs repeatedly"), ("manual", "Yes — done by hand, documented"),
                ("no", "No"))
PEOPLE_ANSWERS = (("yes", "Yes"), ("partly", "Partly"), ("no", "No"))
ANSWER_STATUS = {"automated": PASS, "manual": WARN, "yes": PASS, "partly": WARN, "no": FAIL}
ANSWER_LABELS = dict(MLTS_ANSWERS + PEOPLE_ANSWERS)


@dataclass(frozen=True)
class ItemResult:
    key: str
    section: str
    title: str
    status: str  # pass / warn / fail
    figure: str  # the headline figure, human readable ("median 3.2 days")
    detail: str = ""  # why this status; what to do
    evidence_url: str = ""
    evidence_label: str = ""
    source: str = "auto"  # auto (from records) / answer (a person) / none (neither yet)
    value: float | None = None  # the raw figure when there is one (for CSV/API/trends)
    answer: str = ""
    note: str = ""
    answered_by: str = ""
    answered_at: str = ""
    answerable: bool = False
    extra: dict = field(default_factory=dict)


def grade(value: float | None, *, pass_at: float, warn_at: float, higher_is_better: bool = True) -> str:
    """``pass`` when value reaches ``pass_at``, ``warn`` when it reaches ``warn_at``, else ``fail``.
    ``None`` (not measured) is a fail."""
    if value is None:
        return FAIL
    if higher_is_better:
        return PASS if value >= pass_at else WARN if value >= warn_at else FAIL
    return PASS if value <= pass_at else WARN if value <= warn_at else FAIL


def worst(statuses) -> str:
    statuses = list(statuses)
    if not statuses:
        return FAIL
    return FAIL if FAIL in statuses else WARN if WARN in statuses else PASS


def share(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def median(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(statistics.median(values)) if values else None


def readiness_score(items) -> int:
    """0–100: the mean of pass (1) / warn (½) / fail (0) over the given items."""
    items = list(items)
    if not items:
        return 0
    return int(100 * sum(STATUS_POINTS[i.status] for i in items) / len(items) + 0.5)  # half up


def mlts_points(item: ItemResult) -> float:
    """Breck's points for one test: automated 1, manual ½, not done 0."""
    if item.source == "answer":
        return {"automated": 1.0, "manual": 0.5}.get(item.answer, 0.0)
    if item.source == "auto":
        return STATUS_POINTS[item.status]
    return 0.0


def ml_test_score(items, groups) -> dict:
    """``{"groups": {group: points}, "final": min over groups, "max": 7}`` for the MLTS items."""
    by_group = {g: 0.0 for g in groups}
    for item in items:
        group = item.extra.get("group")
        if group in by_group:
            by_group[group] += mlts_points(item)
    return {"groups": by_group, "final": min(by_group.values()) if by_group else 0.0, "max": 7}


@dataclass(frozen=True)
class StageFacts:
    ready_versions: int = 0
    deployments: int = 0
    shadow_runs: int = 0
    live_with_traffic: int = 0  # live deployments that answered predictions in the last 7 days
    monitored: int = 0  # of those: drift checks on schedule and an alert rule with a channel


def stage_for(facts: StageFacts) -> str:
    if facts.live_with_traffic and facts.monitored:
        return "monitored"
    if facts.live_with_traffic:
        return "production"
    if facts.deployments or facts.shadow_runs:
        return "shadow"
    if facts.ready_versions:
        return "registered"
    return "prototype"


def stage_index(stage: str) -> int:
    return STAGES.index(stage) if stage in STAGES else 0


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = max(0.0, float(seconds))
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def format_share(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f} %"
