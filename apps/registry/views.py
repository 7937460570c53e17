from django.shortcuts import render

from apps.projects.access import project_view


@project_view("model.view")
def model_list(request, project):
    return render(request, "common/empty_tab.html", {
        "project": project, "tab": "registry", "title": "Models",
        "message": "No registered models yet. Upload a model version here once the registry is enabled.",
    })
