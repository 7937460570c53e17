from django.shortcuts import render

from apps.projects.access import project_view


@project_view("deployment.view")
def deployment_list(request, project):
    return render(request, "common/empty_tab.html", {
        "project": project, "tab": "deployments", "title": "Deployments",
        "message": "No deployments yet. Ready model versions are served from here.",
    })
