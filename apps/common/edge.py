"""Text the database cannot store is refused at the edge, here, once (pure: no Django).

PostgreSQL refuses NUL characters in text and JSON, and an unpaired UTF-16 surrogate (``"\\ud800"`` in
JSON) cannot be encoded as UTF-8 at all. Both reach Python as ordinary ``str`` values, so every string a
request carries — path, query, JSON body (keys and values), form and multipart fields, file names, and
the cells of an uploaded table — is checked with :func:`text_problem` before any service sees it. The
API edge (``apps.common.middleware.ApiEdgeMiddleware``, ``portal.api.SlipwayParser``), the prediction
endpoint (``apps.deployments.contract.parse_body``) and the table reader (``apps.features.tabular``)
call these functions; nothing else needs to.
"""

from __future__ import annotations

import re

_BAD = re.compile("[\x00\ud800-\udfff]")
# The same rule as a JSON Schema ``pattern``: portal.api puts it on every free-text string of a request in
# /api/openapi.json, so the schema says what the edge refuses. It names NUL only: an unpaired surrogate is not
# a Unicode scalar value, so no JSON Schema string holds one (and validators compiling patterns as Rust or
# ECMA "u" regexes refuse surrogates in a pattern).
STORABLE_TEXT_PATTERN = r"^[^\u0000]*$"
# ... and text a service refuses when it is empty or only whitespace (``not value.strip()``).
NON_BLANK_TEXT_PATTERN = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored, or None. (A valid surrogate pair in JSON decodes to one code point,
    so any surrogate code point left in a Python str is unpaired.)"""
    match = _BAD.search(value)
    if match is None:
        return None
    if match.group() == "\x00":
        return "must not contain a NUL character (\\u0000)"
    return "must not contain an unpaired UTF-16 surrogate (e.g. \\ud800)"


def find_bad_text(obj, path: str = "") -> tuple[str, str] | None:
    """The first (field path, problem) in a decoded JSON value, walking keys and values; else None.

    Paths read like the validation errors of the API: ``instances[2].city``, ``outcomes[0].label``."""
    if isinstance(obj, str):
        problem = text_problem(obj)
        return (path or "body", problem) if problem else None
    if isinstance(obj, dict):
        for key, value in obj.items():
            key = str(key)
            field = f"{path}.{key}" if path else key
            problem = text_problem(key)
            if problem:
                return (path or "body", f"a key {problem}")
            found = find_bad_text(value, field)
            if found:
                return found
        return None
    if isinstance(obj, list):
        for i, value in enumerate(obj):
            found = find_bad_text(value, f"{path}[{i}]" if path else f"[{i}]")
            if found:
                return found
    return None


def json_text_may_be_bad(text: str) -> bool:
    """A cheap gate for raw JSON text: NUL and surrogates can only arrive as ``\\u`` escapes (a raw NUL is
    invalid JSON and a raw surrogate is invalid UTF-8), so text without ``\\u`` needs no walk."""
    return "\\u" in text or "\x00" in text
