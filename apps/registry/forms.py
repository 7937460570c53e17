import json

from django import forms

from apps.common.forms import null_values_field

from .models import ModelTask


class RegisteredModelForm(forms.Form):
    name = forms.SlugField(max_length=80, help_text="Lowercase letters, digits, '-' and '_'; unique in the project.")
    task = forms.ChoiceField(choices=ModelTask.choices)
    infer_contract = forms.BooleanField(
        required=False, label="Read the contract from the first uploaded version",
        help_text="Feature names and order from the model (feature_names_in_, its ColumnTransformer columns and "
                  "encoder categories), types from the training or holdout file's dtypes. The version page shows "
                  "the result for review.")
    input_contract = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": "Monthly Spend ($):float\ncountry:string\nage:int?"}),
        required=False,
        help_text="Or declare it: one name:type per line in the order the model takes them (types float, int, "
                  "bool, string, datetime; '?' after the type = nullable; a bare name is float), or a JSON list "
                  "with categories and unknown-category policies. Leave empty to use the feature set.")
    feature_set = forms.ModelChoiceField(queryset=None, required=False,
                                         help_text="Feature-store feature set the contract comes from.")
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False, max_length=5000)

    def __init__(self, *args, project=None, **kwargs):
        super().__init__(*args, **kwargs)
        from apps.features.models import FeatureSet

        self.fields["feature_set"].queryset = FeatureSet.objects.filter(project=project) if project else FeatureSet.objects.none()


class FieldGroup:
    """Some of a form's fields, rendered by ``common/_form_fields.html`` like a form (the upload page puts the
    contract preview between its data-file fields and the rest)."""

    def __init__(self, form, names, *, with_form_errors: bool):
        self.form, self.names, self.with_form_errors = form, names, with_form_errors

    def __iter__(self):
        return (self.form[name] for name in self.names)

    def non_field_errors(self):
        return self.form.non_field_errors() if self.with_form_errors else []


class VersionUploadForm(forms.Form):
    FILE_FIELDS = ("artifact", "holdout", "holdout_target", "training_data", "null_values")

    artifact = forms.FileField(help_text="skops (preferred), ONNX, joblib or pickle of a scikit-learn estimator, "
                                         "or an XGBoost (JSON/UBJSON) or LightGBM (text) model file. "
                                         "The format is detected from the content.")
    holdout = forms.FileField(required=False, help_text="CSV or Parquet with the contract features and the target "
                                                         "column: metrics, reference profile and the ONNX check use it.")
    holdout_target = forms.CharField(max_length=120, required=False, initial="target",
                                     help_text="Name of the target column in the holdout file.")
    training_data = forms.FileField(required=False, help_text="Optional CSV or Parquet of the training data: lineage "
                                                               "(hash) and the reference profile for drift monitoring.")
    null_values = null_values_field("Extra text read as missing in the holdout and training data files, e.g. NA, "
                                    "null (only the empty cell otherwise; \"NA\" is a string by default)")
    uploader_metrics = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2, "placeholder": '{"auc": 0.91}'}),
                                       label="Your metrics (JSON)", help_text="As measured in your notebook.")
    tags = forms.CharField(required=False, max_length=1000, help_text="Comma separated.")
    code_ref = forms.CharField(required=False, max_length=300, label="Code reference",
                               help_text="e.g. a git commit or notebook URL.")
    parent_version = forms.IntegerField(required=False, min_value=1, help_text="Version this one was derived from.")
    model_card = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 6}), max_length=100_000,
                                 help_text="Markdown: intended use, data, limitations.")

    @property
    def files_part(self) -> FieldGroup:
        return FieldGroup(self, self.FILE_FIELDS, with_form_errors=True)

    @property
    def rest_part(self) -> FieldGroup:
        return FieldGroup(self, [n for n in self.fields if n not in self.FILE_FIELDS], with_form_errors=False)

    def clean_uploader_metrics(self):
        raw = (self.cleaned_data.get("uploader_metrics") or "").strip()
        if not raw:
            return {}
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise forms.ValidationError("Enter a JSON object such as {\"auc\": 0.91}") from exc
        if not isinstance(value, dict):
            raise forms.ValidationError("Enter a JSON object such as {\"auc\": 0.91}")
        return value


class CompareForm(forms.Form):
    a = forms.IntegerField(min_value=1, required=False)
    b = forms.IntegerField(min_value=1, required=False)
    feature = forms.CharField(required=False, max_length=120)
