from django import forms


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
