"""Forms of the monitoring configuration page. They only parse input: every rule is checked by the same
service functions the API calls (``services.monitor_settings_update``, ``threshold_override_set``,
``alert_rule_create`` / ``alert_rule_update``), whose ``InvalidInput`` errors land beside the named field."""

from django import forms

from .models import Comparator, Severity, WindowKind

THRESHOLD_FIELDS = {
    "alpha": "Significance level (KS, chi-square)",
    "wasserstein": "Wasserstein distance floor (reference sd)",
    "js": "Jensen–Shannon distance floor",
    "psi": "PSI flag",
    "dataset_share": "Share of drifted features that makes the data set drifted",
    "domain_auc": "Domain-classifier AUC that means multivariate drift",
}
OVERRIDE_FIELDS = ("alpha", "wasserstein", "js", "psi")


class SettingsForm(forms.Form):
    window_kind = forms.ChoiceField(choices=WindowKind.choices, label="Windows")
    window_count = forms.IntegerField(min_value=1, label="Predictions per window (count windows)")
    window_minutes = forms.IntegerField(min_value=1, label="Minutes per window (time windows)")
    schedule_enabled = forms.BooleanField(required=False, label="Compute windows on the schedule")

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "settings_%s")
        super().__init__(*args, **kwargs)
        for key, label in THRESHOLD_FIELDS.items():
            self.fields[f"t_{key}"] = forms.FloatField(required=False, min_value=0, label=label,
                                                      help_text="empty: the default")

    def thresholds(self) -> dict:
        return {k: self.cleaned_data[f"t_{k}"] for k in THRESHOLD_FIELDS if self.cleaned_data.get(f"t_{k}") is not None}


class OverrideForm(forms.Form):
    feature = forms.ChoiceField(label="Feature")
    reason = forms.CharField(max_length=500, label="Reason", help_text="why this feature gets its own thresholds")

    def __init__(self, *args, features=(), **kwargs):
        kwargs.setdefault("auto_id", "override_%s")
        super().__init__(*args, **kwargs)
        self.fields["feature"].choices = [(f, f) for f in features]
        for key in OVERRIDE_FIELDS:
            self.fields[f"o_{key}"] = forms.FloatField(required=False, min_value=0, label=THRESHOLD_FIELDS[key])

    def values(self) -> dict:
        return {k: self.cleaned_data[f"o_{k}"] for k in OVERRIDE_FIELDS if self.cleaned_data.get(f"o_{k}") is not None}


class AlertRuleForm(forms.Form):
    name = forms.CharField(max_length=120)
    metric = forms.ChoiceField(label="Metric")
    comparator = forms.ChoiceField(choices=Comparator.choices)
    threshold = forms.FloatField()
    consecutive = forms.IntegerField(min_value=1, initial=1, label="Windows in a row")
    severity = forms.ChoiceField(choices=Severity.choices, initial=Severity.WARNING)
    channels = forms.MultipleChoiceField(choices=[("email", "E-mail"), ("webhook", "Webhook")], required=False,
                                         widget=forms.CheckboxSelectMultiple)
    emails = forms.CharField(required=False, label="E-mail addresses", help_text="comma-separated")
    webhook_url = forms.URLField(required=False, max_length=500, label="Webhook URL", assume_scheme="https")
    webhook_secret = forms.CharField(required=False, max_length=200, label="Webhook signing secret",
                                     widget=forms.PasswordInput(render_value=False))
    cooldown_minutes = forms.IntegerField(min_value=0, initial=60, label="Cooldown (minutes)")

    def __init__(self, *args, metrics=(), **kwargs):
        kwargs.setdefault("auto_id", "rule_%s")
        super().__init__(*args, **kwargs)
        self.fields["metric"].choices = list(metrics)

    def clean_emails(self) -> list[str]:
        raw = [e.strip() for e in (self.cleaned_data.get("emails") or "").split(",") if e.strip()]
        validator = forms.EmailField()
        return [validator.clean(e) for e in raw]
