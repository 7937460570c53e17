from django.shortcuts import render

from apps.projects.access import project_view


@project_view("monitoring.view")
def overview(request, project):
    return render(request, "common/empty_tab.html", {
        "project": project, "tab": "monitoring", "title": "Monitoring",
        "message": "No monitored deployments yet. Drift, performance and alerts appear here.",
    })
