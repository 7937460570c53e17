from django import forms
from django.contrib.auth import get_user_model

from apps.common.forms import null_values_field

from .models import ValueType

DURATION_HELP = "e.g. 0, 30m, 1h, 2d, 1w"


class CatalogFilterForm(forms.Form):
    q = forms.CharField(required=False, max_length=100, label="Search",
                        widget=forms.TextInput(attrs={"type": "search", "placeholder": "view, feature or description"}))
    entity = forms.ChoiceField(required=False)
    owner = forms.ChoiceField(required=False)
    mode = forms.ChoiceField(required=False, label="Serving",
                             choices=[("", "online and batch"), ("online", "online"), ("batch", "batch-only")])
    tag = forms.ChoiceField(required=False)

    def __init__(self, *args, entities=(), owners=(), tags=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["entity"].choices = [("", "all entities")] + [(e, e) for e in entities]
        self.fields["owner"].choices = [("", "all owners")] + [(o, o) for o in owners]
        self.fields["tag"].choices = [("", "all tags")] + [(t, t) for t in tags]


class EntityForm(forms.Form):
    name = forms.SlugField(max_length=80, help_text="e.g. customer")
    join_key = forms.CharField(max_length=120, help_text="Column holding the key in sources and label files, e.g. customer_id")
    value_type = forms.ChoiceField(choices=[(ValueType.STRING, "String"), (ValueType.INT, "Integer")])
    description = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))


class SourceUploadForm(forms.Form):
    name = forms.SlugField(max_length=80, help_text="An existing source name adds a new version")
    file = forms.FileField(help_text="CSV (with a header row) or Parquet; timestamps in ISO 8601, UTC unless an offset is given")
    column_types = forms.CharField(
        required=False, max_length=20000, label="Column types",
        help_text="Declare types the file must have, e.g. customer_id:string, amount:float (string, int, float, "
                  "bool, datetime). Undeclared columns are inferred on the first upload; later versions keep them.")
    null_values = null_values_field()
    description = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))


class FeatureViewForm(forms.Form):
    name = forms.SlugField(max_length=80)
    entity = forms.ModelChoiceField(queryset=None, to_field_name="name")
    source = forms.ModelChoiceField(queryset=None, to_field_name="name")
    entity_column = forms.CharField(required=False, max_length=120,
                                    help_text="Source column with the entity key (default: the entity's join key)")
    timestamp_column = forms.CharField(max_length=120, help_text="Source column with the event time")
    written_at_column = forms.CharField(required=False, max_length=120,
                                        help_text="Source column with the time each row was recorded (backfills, corrections)")
    features = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}),
                               help_text="One source column per line, optionally followed by ': description'")
    availability_lag = forms.CharField(max_length=40, initial="0",
                                       help_text="A value describing time t is usable from t + lag on (" + DURATION_HELP + ")")
    ttl = forms.CharField(required=False, max_length=40, label="TTL",
                          help_text="Maximum age of a usable value; empty: no limit (" + DURATION_HELP + ")")
    online = forms.BooleanField(required=False, label="Served online", help_text="Materialized into the online store")
    materialize_every = forms.CharField(required=False, max_length=40,
                                        help_text="Materialization schedule for online views (" + DURATION_HELP + ")")
    freshness_sla = forms.CharField(required=False, max_length=40, label="Freshness SLA",
                                    help_text="Maximum age of the newest value before the SLA is breached")
    owner = forms.ModelChoiceField(queryset=None, required=False, to_field_name="username",
                                   help_text="Who answers for this view (default: you)")
    tags = forms.CharField(required=False, max_length=400, help_text="Comma-separated")
    description = forms.CharField(required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, project, edit: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["entity"].queryset = project.feature_entities.all()
        self.fields["source"].queryset = project.feature_sources.all()
        self.fields["owner"].queryset = get_user_model().objects.filter(memberships__project=project)
        if edit:
            del self.fields["name"]

    def clean_features(self):
        out = []
        for line in self.cleaned_data["features"].splitlines():
            if not line.strip():
                continue
            name, _, desc = line.partition(":")
            out.append({"name": name.strip(), "description": desc.strip()})
        if not out:
            raise forms.ValidationError("List at least one feature column")
        return out

    def clean_tags(self):
        return [t.strip() for t in self.cleaned_data["tags"].split(",") if t.strip()]


class FeatureSetForm(forms.Form):
    name = forms.SlugField(max_length=80)
    features = forms.CharField(widget=forms.Textarea(attrs={"rows": 5}),
                               help_text="One reference per line: view:feature (pin a version with view@2:feature, "
                                         "rename with 'view:feature as name')")
    description = forms.CharField(required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 2}))

    def clean_features(self):
        return [line.strip() for line in self.cleaned_data["features"].splitlines() if line.strip()]


class TrainingSetForm(forms.Form):
    name = forms.SlugField(max_length=80)
    feature_set = forms.ModelChoiceField(queryset=None, to_field_name="name")
    labels = forms.FileField(label="Label file",
                             help_text="CSV or Parquet: the entity key column(s), the event timestamp and the label column(s)")
    timestamp_column = forms.CharField(max_length=120, initial="event_timestamp",
                                       help_text="Column of the label file with each example's event time")
    null_values = null_values_field()
    description = forms.CharField(required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, project, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["feature_set"].queryset = project.feature_sets.all()
