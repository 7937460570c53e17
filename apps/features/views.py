from django.shortcuts import render

from apps.projects.access import project_view


@project_view("feature.view")
def catalog(request, project):
    return render(request, "common/empty_tab.html", {
        "project": project, "tab": "features", "title": "Features",
        "message": "No feature views yet. The feature store (entities, sources, feature views, training sets) lives here.",
    })
