"""Test URLconf used until the promotion pages and API are wired into portal/urls.py and portal/api.py
(kept out of the shared files while the serving half of the app was still changing its migrations)."""

from django.urls import include, path

from portal.api import api

if not any(prefix == "" and "api_promotion" in str(r) for prefix, r in getattr(api, "_routers", [])):
    try:
        api.add_router("/", "apps.deployments.api_promotion.router")
    except Exception:  # noqa: BLE001 - already mounted (portal/api.py does it once wired)
        pass

from portal.urls import urlpatterns as _base  # noqa: E402

_at = next(i for i, p in enumerate(_base) if str(p.pattern) == "api/v1/")
urlpatterns = [path("", include("apps.deployments.urls_promotion")), *_base[:_at], path("api/v1/", api.urls),
               *_base[_at:]]
