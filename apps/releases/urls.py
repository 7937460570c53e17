"""Pages of shadow runs and promotion (namespace ``releases``; included from portal/urls.py)."""

from django.urls import path

from . import views as v

app_name = "releases"

_d = "projects/<slug:project>/deployments/<slug:deployment>/"
_p = "projects/<slug:project>/promotions/"

urlpatterns = [
    path(_d + "shadow/", v.shadow_list, name="shadow-list"),
    path(_d + "shadow/<int:run_id>/", v.shadow_detail, name="shadow-detail"),
    path(_d + "shadow/<int:run_id>/stop", v.shadow_stop, name="shadow-stop"),
    path(_d + "shadow/<int:run_id>/score", v.shadow_score, name="shadow-score"),
    path(_d + "shadow/<int:run_id>/resume", v.shadow_resume, name="shadow-resume"),
    path(_d + "promote", v.promotion_create, name="request-create"),
    path(_d + "releases", v.deployment_releases, name="deployment-releases"),
    path(_d + "canary", v.canary_set_view, name="canary-set"),
    path(_d + "canary/stop", v.canary_stop_view, name="canary-stop"),
    path(_d + "canary/resume", v.canary_resume_view, name="canary-resume"),
    path(_p, v.promotion_list, name="request-list"),
    path(_p + "policy", v.promotion_policy_view, name="policy"),
    path(_p + "<int:pk>/", v.promotion_detail, name="request-detail"),
    path(_p + "<int:pk>/review", v.promotion_review, name="request-review"),
    path(_p + "<int:pk>/refresh", v.promotion_refresh, name="request-refresh"),
    path(_p + "<int:pk>/withdraw", v.promotion_withdraw, name="request-withdraw"),
    path("promotions/inbox", v.promotion_inbox, name="inbox"),
]
