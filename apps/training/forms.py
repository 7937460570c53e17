from django import forms

from apps.common.forms import null_values_field
from apps.monitoring.models import Comparator


class TrainingJobForm(forms.Form):
    parent_version = forms.TypedChoiceField(coerce=int, label="Refit version",
                                            help_text="Its estimator is cloned (same pipeline and hyperparameters) "
                                                      "and fit afresh.")
    labels = forms.FileField(label="Label file", help_text="CSV or Parquet: the entity key, the event time and the "
                                                           "label. Features are joined point-in-time.")
    timestamp_column = forms.CharField(max_length=120, initial="event_timestamp", required=False,
                                       help_text="Column of the label file with the event time.")
    label_column = forms.CharField(max_length=120, required=False,
                                   help_text="Leave empty when the file has one column besides key and time.")
    null_values = null_values_field()
    window_start = forms.DateTimeField(required=False, label="Labels from (UTC)",
                                       widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    window_end = forms.DateTimeField(required=False, label="Labels until (UTC, exclusive)",
                                     widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    holdout_fraction = forms.FloatField(initial=0.2, required=False, min_value=0.05, max_value=0.5,
                                        help_text="The newest share of rows (by event time) held out for evaluation.")
    holdout_split_at = forms.DateTimeField(required=False, label="Or split at (UTC)",
                                           widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
                                           help_text="Rows before this time train, rows from it on are the holdout.")
    note = forms.CharField(max_length=300, required=False)

    def __init__(self, *args, versions=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["parent_version"].choices = [(v.version, f"v{v.version}") for v in versions]


METRIC_ROWS = 2


class RetrainingPolicyForm(forms.Form):
    enabled = forms.BooleanField(required=False, initial=True, label="Enabled",
                                 help_text="A disabled policy never fires by itself; \"Retrain now\" still works.")
    alert_rules = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple,
                                            label="Fire while one of these alert rules has an open alert")
    cooldown_minutes = forms.IntegerField(min_value=0, initial=24 * 60, label="Cooldown (minutes)",
                                          help_text="No new firing this long after the last one.")
    max_firings = forms.IntegerField(min_value=1, initial=2, label="At most … firings")
    max_firings_period_hours = forms.IntegerField(min_value=1, initial=168, label="… per (hours)")
    min_new_labels = forms.IntegerField(min_value=0, initial=500, label="Minimum new labelled rows",
                                        help_text="Outcomes received since the last retraining (or since the "
                                                  "production version started serving).")
    training_window_days = forms.IntegerField(min_value=1, initial=30, label="Training window (days)",
                                              help_text="Outcomes of predictions made in this many past days train "
                                                        "the new version.")
    holdout_fraction = forms.FloatField(min_value=0.05, max_value=0.5, initial=0.2, label="Holdout fraction",
                                        help_text="The newest share of those rows evaluates candidate and parent.")
    note = forms.CharField(required=False, max_length=300)

    def __init__(self, *args, rules=(), metrics=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["alert_rules"].choices = [(str(r.pk), f"{r.name} ({r.metric} {Comparator(r.comparator).label} "
                                                          f"{r.threshold:g}, {r.consecutive} window(s))") for r in rules]
        for i in range(1, METRIC_ROWS + 1):
            self.fields[f"metric_{i}"] = forms.ChoiceField(
                required=False, label=f"Metric condition {i}", choices=[("", "—")] + list(metrics),
                widget=forms.Select(attrs={"aria-label": f"Metric of condition {i}"}))
            self.fields[f"comparator_{i}"] = forms.ChoiceField(
                required=False, choices=Comparator.choices, label="is",
                widget=forms.Select(attrs={"aria-label": f"Comparison of condition {i}"}))
            self.fields[f"threshold_{i}"] = forms.FloatField(
                required=False, label="threshold",
                widget=forms.NumberInput(attrs={"aria-label": f"Threshold of condition {i}", "step": "any"}))
            self.fields[f"windows_{i}"] = forms.IntegerField(
                required=False, min_value=1, initial=3, label="for N windows in a row",
                widget=forms.NumberInput(attrs={"aria-label": f"Windows in a row of condition {i}"}))

    METRIC_PREFIXES = ("metric_", "comparator_", "threshold_", "windows_")

    def main_fields(self):
        return [f for f in self if not f.name.startswith(self.METRIC_PREFIXES)]

    def metric_rows(self):
        return [[self[f"{p}{i}"] for p in self.METRIC_PREFIXES] for i in range(1, METRIC_ROWS + 1)]

    def triggers(self) -> list[dict]:
        d = self.cleaned_data
        out = [{"kind": "alert_rule", "rule_id": int(pk)} for pk in d.get("alert_rules") or []]
        for i in range(1, METRIC_ROWS + 1):
            if d.get(f"metric_{i}"):
                out.append({"kind": "metric", "metric": d[f"metric_{i}"], "comparator": d.get(f"comparator_{i}"),
                            "threshold": d.get(f"threshold_{i}"), "windows": d.get(f"windows_{i}") or 1})
        return out

    @classmethod
    def initial_for(cls, policy) -> dict:
        if policy is None:
            return {}
        initial = {k: getattr(policy, k) for k in ("enabled", "cooldown_minutes", "max_firings",
                                                    "max_firings_period_hours", "min_new_labels",
                                                    "training_window_days", "holdout_fraction", "note")}
        initial["alert_rules"] = [str(t["rule_id"]) for t in policy.triggers if t.get("kind") == "alert_rule"]
        metrics = [t for t in policy.triggers if t.get("kind") == "metric"]
        for i, t in enumerate(metrics[:METRIC_ROWS], 1):
            initial.update({f"metric_{i}": t["metric"], f"comparator_{i}": t["comparator"],
                            f"threshold_{i}": t["threshold"], f"windows_{i}": t["windows"]})
        return initial


class RetrainNowForm(forms.Form):
    reason = forms.CharField(required=False, max_length=200, widget=forms.TextInput(
        attrs={"placeholder": "Why? (optional)", "aria-label": "Reason for retraining now"}))
