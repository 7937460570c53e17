"""Static files in development (``DEBUG=true``, what ``rundemo`` runs): every ``{% static %}`` URL carries
its content's hash as a query string (``plotly.min.js?v=3f2a…``), so WhiteNoise can let browsers keep
static files (``WHITENOISE_MAX_AGE`` in settings) instead of revalidating the 4.7 MB plotly.js on every
chart page — and an edited file still gets a new URL at once. In production the manifest storage serves
content-hashed names instead (``CompressedManifestStaticFilesStorage``)."""

from __future__ import annotations

import hashlib
import os
import threading

from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import StaticFilesStorage

_HASHES: dict[str, tuple[float, int, str]] = {}
_LOCK = threading.Lock()


def content_hash(path: str) -> str:
    """The first 12 hex digits of the file's MD5, recomputed only when its mtime or size changes."""
    st = os.stat(path)
    cached = _HASHES.get(path)
    if cached and cached[:2] == (st.st_mtime, st.st_size):
        return cached[2]
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    value = digest.hexdigest()[:12]
    with _LOCK:
        _HASHES[path] = (st.st_mtime, st.st_size, value)
    return value


class VersionedStaticFilesStorage(StaticFilesStorage):
    def url(self, name):
        url = super().url(name)
        found = finders.find(name) if name else None
        if isinstance(found, list):
            found = found[0] if found else None
        if not found:
            return url
        try:
            return f"{url}{'&' if '?' in url else '?'}v={content_hash(found)}"
        except OSError:
            return url
