from django.shortcuts import render
from django_htmx.http import HTMX_STOP_POLLING, trigger_client_event

# The event a final job status fires in the browser (from the polling element; it bubbles to <body>).
# A page part that shows a job's result listens with hx-trigger="job-finished from:body" and reloads itself.
JOB_FINISHED_EVENT = "job-finished"


def render_job_status(request, job, *, extra: dict | None = None):
    """The reusable job progress partial; answers 286 (stop polling) once the job is final, and then fires
    ``job-finished`` ({"job": id, "status": ..., "kind": ...}) so the page can refresh what the job changed."""
    final = bool(request.htmx and job.is_final)
    response = render(request, "common/_job_status.html", {"job": job, **(extra or {})},
                      status=HTMX_STOP_POLLING if final else 200)
    if final:
        trigger_client_event(response, JOB_FINISHED_EVENT,
                             {"job": str(job.pk), "status": job.status, "kind": getattr(job, "kind", "")})
    return response
