from django.urls import path

from . import views

app_name = "projects"

urlpatterns = [
    path("", views.project_list, name="project-list"),
    path("projects/new/", views.project_create_view, name="project-create"),
    path("projects/<slug:project>/", views.project_detail, name="project-detail"),
    path("projects/<slug:project>/settings/", views.project_edit, name="project-edit"),
    path("projects/<slug:project>/archive/", views.project_archive_view, name="project-archive"),
    path("projects/<slug:project>/members/", views.member_list, name="member-list"),
    path("projects/<slug:project>/members/add/", views.member_add, name="member-add"),
    path("projects/<slug:project>/members/<int:membership_id>/role/", views.member_role, name="member-role"),
    path("projects/<slug:project>/members/<int:membership_id>/remove/", views.member_remove, name="member-remove"),
    path("projects/<slug:project>/audit/", views.audit_log, name="audit-log"),
    path("projects/<slug:project>/audit/export/", views.audit_export, name="audit-export"),
    path("projects/<slug:project>/audit/export/<uuid:job_id>.csv", views.audit_export_download,
         name="audit-export-download"),
    path("jobs/<uuid:job_id>/", views.job_status, name="job-status"),
    path("jobs/<uuid:job_id>/cancel/", views.job_cancel_view, name="job-cancel"),
    path("account/tokens/", views.token_list, name="token-list"),
    path("account/tokens/<int:token_id>/revoke/", views.token_revoke, name="token-revoke"),
    path("healthz", views.healthz, name="healthz"),
]
