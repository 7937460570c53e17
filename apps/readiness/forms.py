from django import forms

from . import scoring


class AnswerForm(forms.Form):
    answer = forms.ChoiceField(required=False, choices=[("", "— no answer —")])
    note = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}),
                           help_text="What the portal cannot see: who, how, where it is written down.")

    def __init__(self, *args, choices=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["answer"].choices = [("", "— no answer —"), *choices]
        if not choices:
            del self.fields["answer"]


class SnapshotForm(forms.Form):
    note = forms.CharField(required=False, max_length=2000, label="Note",
                           widget=forms.TextInput(attrs={"placeholder": "e.g. quarterly review"}))


class PortfolioFilterForm(forms.Form):
    q = forms.CharField(required=False, max_length=100, label="Search",
                        widget=forms.TextInput(attrs={"type": "search", "placeholder": "project name"}))
    stage = forms.ChoiceField(required=False, choices=[("", "any stage")] + [(s, s) for s in scoring.STAGES])
    alerts = forms.ChoiceField(required=False, label="Open alerts",
                               choices=[("", "any"), ("open", "with open alerts"), ("none", "none open")])
    min_score = forms.IntegerField(required=False, min_value=0, max_value=100, label="Min. score")
    sort = forms.ChoiceField(required=False, choices=[(s, s) for s in (
        "name", "stage", "score", "mlts", "lead_time", "owner", "open_alerts", "last_promotion")])
    dir = forms.ChoiceField(required=False, choices=[("asc", "asc"), ("desc", "desc")])
