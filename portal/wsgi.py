import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
application = get_wsgi_application()

# deployments: POST /api/v1/deployments/<slug>/predict is answered before Django's middleware stack.
from apps.deployments.serving import ServingDispatcher  # noqa: E402

application = ServingDispatcher(application)
