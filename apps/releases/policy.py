"""The promotion policy of a project: gate thresholds and approvals, stored in ``Project.settings``.

Values live under ``project.settings["promotion"]`` and are written with
``apps.projects.services.project_settings_update`` (the owner's project settings); see
``promotion.promotion_policy_update``. Missing keys take the defaults below.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class PromotionPolicy:
    approvals_required: int = 1  # distinct reviewers (never the requester)
    min_shadow_requests: int = 200  # gate: the candidate shadowed at least this many requests
    tolerance: float = 0.01  # gate: candidate metric may be worse than production by at most this
    min_labelled: int = 200  # requests with known outcomes before a shadow verdict is shown
    alpha: float = 0.05  # significance level of the paired tests
    first_version_owner_override: bool = True  # an owner may put a first version live without a request
    # Declared primary metrics, comma-separated (shadow_stats.PRIMARY_METRICS); "" = the task's default
    # (binary: accuracy,roc_auc; multiclass: accuracy; regression: rmse). Each is tested on the shadow
    # outcomes; a significantly worse one fails the "not worse" gate.
    primary_metrics: str = ""
    metric_margin: float = 0.0  # non-inferiority margin: significantly worse by more than this fails

    def metrics_for(self, task: str) -> tuple[str, ...]:
        declared = tuple(m.strip() for m in self.primary_metrics.split(",") if m.strip())
        if declared:
            return declared
        return {"binary_classification": ("accuracy", "roc_auc"), "regression": ("rmse",)}.get(task, ("accuracy",))

    def to_dict(self) -> dict:
        return asdict(self)


LIMITS = {
    "approvals_required": (1, 10),
    "min_shadow_requests": (0, 10_000_000),
    "tolerance": (0.0, 1.0),
    "min_labelled": (10, 10_000_000),
    "alpha": (0.0001, 0.5),
    "metric_margin": (0.0, 1.0),
}


def promotion_policy(project) -> PromotionPolicy:
    raw = (getattr(project, "settings", None) or {}).get("promotion") or {}
    values = {}
    for f in fields(PromotionPolicy):
        if f.name in raw:
            try:
                values[f.name] = bool(raw[f.name]) if f.type == "bool" else type(f.default)(raw[f.name])
            except (TypeError, ValueError):
                continue
    return PromotionPolicy(**values)
