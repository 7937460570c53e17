from django import forms
from django.conf import settings

from .models import InputMode


class DeploymentForm(forms.Form):
    version = forms.ModelChoiceField(queryset=None, empty_label="Choose a ready model version",
                                     help_text="Only validated (ready) versions can serve.")
    slug = forms.SlugField(max_length=60, help_text="Unique across the portal: the URL is "
                                                    "/api/v1/deployments/<slug>/predict")
    name = forms.CharField(max_length=120, required=False, help_text="Optional display name.")
    owner = forms.ModelChoiceField(queryset=None, required=False, empty_label="No owner (stays paused)",
                                   help_text="The person answerable for this service. Without an owner it cannot go live.")
    input_mode = forms.ChoiceField(choices=InputMode.choices, initial=InputMode.INLINE)
    max_batch = forms.IntegerField(min_value=1, initial=100, help_text="Largest batch accepted per request.")
    go_live = forms.BooleanField(required=False, initial=True, label="Go live now")
    override_reason = forms.CharField(
        max_length=400, required=False, label="Owner override reason",
        help_text="A first version goes live only through an approved promotion request (leave 'Go live now' "
                  "off and open one). A project owner may instead put it live with a reason, recorded in the audit "
                  "log, where the project's promotion policy allows owner overrides.")

    def __init__(self, *args, versions, members, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["version"].queryset = versions
        self.fields["version"].label_from_instance = lambda v: f"{v.model.name} v{v.version}"
        self.fields["owner"].queryset = members
        self.fields["owner"].label_from_instance = lambda u: u.get_full_name() or u.username
        self.fields["max_batch"].max_value = settings.SERVING_MAX_BATCH


class PauseForm(forms.Form):
    reason = forms.CharField(max_length=300, required=False,
                             widget=forms.TextInput(attrs={"placeholder": "Why (shown to callers)"}))


class VersionForm(forms.Form):
    version = forms.ModelChoiceField(queryset=None, empty_label=None)
    reason = forms.CharField(max_length=500, required=False,
                             widget=forms.TextInput(attrs={"placeholder": "Why this version"}))

    def __init__(self, *args, versions, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["version"].queryset = versions
        self.fields["version"].label_from_instance = lambda v: f"{v.model.name} v{v.version}"


class OwnerForm(forms.Form):
    owner = forms.ModelChoiceField(queryset=None, required=False, empty_label="Nobody")

    def __init__(self, *args, members, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = members
        self.fields["owner"].label_from_instance = lambda u: u.get_full_name() or u.username


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=80, widget=forms.TextInput(attrs={"placeholder": "e.g. checkout-service"}))
