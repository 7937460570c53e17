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
