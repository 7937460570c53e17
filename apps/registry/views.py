from django.shortcuts import render

from apps.projects.access import project_view


@project_view("model.view")
def model_list(request, project):
    return render(request, "common/empty_tab.html", {"project": project, "tab": "registry", "title": "Models"})


model_create = model_detail = version_upload = version_compare = version_detail = version_status = model_list
version_download = version_archive = model_list
