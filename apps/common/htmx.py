from django.shortcuts import render
from django_htmx.http import HTMX_STOP_POLLING


def render_job_status(request, job, *, extra: dict | None = None):
    """The reusable job progress partial; answers 286 (stop polling) once the job is final."""
    status = HTMX_STOP_POLLING if (request.htmx and job.is_final) else 200
    return render(request, "common/_job_status.html", {"job": job, **(extra or {})}, status=status)
