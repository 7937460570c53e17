from django import forms

from .errors import ApplicationError


def add_domain_error(form, exc: ApplicationError) -> None:
    """Put a domain error on the form: on its field when the error names one the form has."""
    placed = False
    for err in exc.errors:
        field = err.get("field")
        if field in form.fields:
            form.add_error(field, err["message"])
            placed = True
    if not placed:
        form.add_error(None, exc.message)


NULL_TOKENS_HELP = "Extra text read as missing, e.g. NA, null (only the empty cell otherwise)"


def null_values_field(help_text: str = NULL_TOKENS_HELP):
    """The per-upload null tokens field of every tabular upload form (sources, label files, holdouts,
    training data). The services parse it with one function (``features.services.tabular_null_values``:
    a JSON list or ``NA, null`` text; a bad value is a 422 on this field)."""
    return forms.CharField(required=False, max_length=400, label="Null tokens", help_text=help_text)
