from django import forms

from .models import ReviewDecision
from .policy import LIMITS


def _version_label(v) -> str:
    return f"{v.model.name} v{v.version}"


class ShadowStartForm(forms.Form):
    candidate = forms.ModelChoiceField(queryset=None, empty_label="Choose a ready candidate version",
                                       help_text="A validated version of the model this deployment serves.")
    backfill_hours = forms.FloatField(min_value=0, max_value=24 * 90, initial=24, label="Also score traffic of the last (hours)",
                                      help_text="0 = only requests from now on.")

    def __init__(self, *args, candidates, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["candidate"].queryset = candidates
        self.fields["candidate"].label_from_instance = _version_label


class PromotionRequestForm(forms.Form):
    candidate = forms.ModelChoiceField(queryset=None, empty_label="Choose the candidate version")
    justification = forms.CharField(max_length=5000, widget=forms.Textarea(attrs={"rows": 4}),
                                    help_text="Why should this version serve production? Reviewers read this first.")

    def __init__(self, *args, candidates, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["candidate"].queryset = candidates
        self.fields["candidate"].label_from_instance = _version_label


class ReviewForm(forms.Form):
    decision = forms.ChoiceField(choices=ReviewDecision.choices, widget=forms.RadioSelect)
    comment = forms.CharField(max_length=5000, widget=forms.Textarea(attrs={"rows": 3}),
                              help_text="Part of the permanent record, sent to the requester.")
    override_reason = forms.CharField(max_length=5000, required=False, widget=forms.Textarea(attrs={"rows": 2}),
                                      label="Override reason",
                                      help_text="Required to approve while a gate fails.")
    evidence_hash = forms.CharField(widget=forms.HiddenInput, max_length=64)
    artifact_sha256 = forms.CharField(widget=forms.HiddenInput, max_length=64)


class CanaryForm(forms.Form):
    candidate = forms.ModelChoiceField(queryset=None, empty_label="Choose a ready candidate version")
    percent = forms.FloatField(min_value=0.1, max_value=50, initial=5, label="Share of live requests (%)",
                               widget=forms.NumberInput(attrs={"aria-label": "Share of live requests (%)",
                                                               "title": "Share of live requests (%)", "step": "any"}))
    sticky_by = forms.ChoiceField(choices=[("request", "Request id hash"), ("entity", "Entity key hash")],
                                  initial="request", help_text="The same request id / entity always gets the same side.")

    def __init__(self, *args, candidates, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["candidate"].queryset = candidates
        self.fields["candidate"].label_from_instance = _version_label


class RollbackForm(forms.Form):
    reason = forms.CharField(max_length=400, required=False,
                             widget=forms.TextInput(attrs={"placeholder": "Why (recorded in the timeline)"}))


class PolicyForm(forms.Form):
    approvals_required = forms.IntegerField(min_value=LIMITS["approvals_required"][0],
                                            max_value=LIMITS["approvals_required"][1],
                                            help_text="Distinct reviewers (never the requester) needed to promote.")
    min_shadow_requests = forms.IntegerField(min_value=0, label="Minimum shadowed requests",
                                             help_text="Gate: the candidate scored at least this many logged requests.")
    tolerance = forms.FloatField(min_value=0, max_value=1, help_text="Gate: the candidate's accuracy (RMSE for "
                                 "regressors) may be worse than production by at most this.")
    min_labelled = forms.IntegerField(min_value=LIMITS["min_labelled"][0], label="Outcomes needed for a verdict",
                                      help_text="Requests with known outcomes before the shadow comparison shows a verdict.")
    alpha = forms.FloatField(min_value=LIMITS["alpha"][0], max_value=LIMITS["alpha"][1], label="Significance level")
    first_version_owner_override = forms.BooleanField(
        required=False, label="Owners may put a first version live without a request (audited)")
    primary_metrics = forms.CharField(
        required=False, max_length=200, label="Primary metrics",
        help_text="Comma-separated: accuracy, roc_auc, log_loss, rmse, mae. Empty: accuracy and ROC AUC (binary), "
                  "accuracy (multiclass), RMSE (regression). Each is tested on the shadow outcomes (paired "
                  "bootstrap); a significantly worse one fails the gate.")
    metric_margin = forms.FloatField(
        required=False, min_value=0, max_value=1, label="Non-inferiority margin",
        help_text="How much worse a primary metric may be before a significant difference fails the gate (0: any).")

    def clean_metric_margin(self):
        value = self.cleaned_data.get("metric_margin")
        return 0.0 if value is None else value
