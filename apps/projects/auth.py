"""How the API authenticates: a personal token (``Authorization: Bearer slw_…``) or the browser session
(with CSRF). ``portal/api.py`` uses both for every operation; a hot read path may opt into the cached
token check (``TokenAuth(cached=True)``, see ``services.api_token_authenticate_cached``)."""

from ninja.security import HttpBearer
from ninja.security.session import SessionAuth

from .services import api_token_authenticate, api_token_authenticate_cached


class TokenAuth(HttpBearer):
    openapi_description = "Personal API token: `Authorization: Bearer slw_…` (create one under Account → API tokens)."

    def __init__(self, *, cached: bool = False):
        super().__init__()
        self.cached = cached

    def authenticate(self, request, token):
        user = (api_token_authenticate_cached if self.cached else api_token_authenticate)(plaintext=token)
        if user is not None:
            request.user = user
        return user


class BrowserSessionAuth(SessionAuth):
    """The browser session, CSRF-checked. Requests without a signed-in session skip the CSRF check
    (they are not authenticated by it anyway), so an anonymous call gets 401, not a CSRF 403."""

    def _get_key(self, request):
        if not request.user.is_authenticated:
            return None
        return super()._get_key(request)
