"""Content-Security-Policy and static-file caching.

The browser side (no page reports a CSP violation) is checked by every Playwright test (tests/e2e/conftest.py).
"""

import base64
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


@pytest.mark.django_db
def test_every_page_gets_a_strict_policy(client, django_user_model):
    for url in ("/login/", "/api/docs"):
        policy = _policy(client.get(url))
        assert policy["default-src"] == ["'self'"]
        assert policy["script-src"] == ["'self'"], "no inline scripts, no eval, no other host"
        assert policy["object-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]
        assert policy["style-src"] == ["'self'"]
        assert all(s == "'self'" or s.startswith("'sha256-") for s in policy["style-src-elem"])
        assert policy["style-src-attr"] == ["'none'"], "no style=\"\" attributes"
        assert not any("http" in s or s == "*" for v in policy.values() for s in v), policy


def test_templates_have_no_inline_scripts_or_handlers():
    offenders = []
    for path in (ROOT / "templates").rglob("*.html"):
        text = path.read_text()
        for m in re.finditer(r"<script\b[^>]*>", text):
            if "src=" not in m.group(0):
                offenders.append(f"{path.relative_to(ROOT)}: inline {m.group(0)}")
        for m in re.finditer(r"\s(on[a-z]+)\s*=\s*[\"']", text):
            offenders.append(f"{path.relative_to(ROOT)}: handler {m.group(1)}=")
        for m in re.finditer(r"<[a-zA-Z][^<>]*\sstyle\s*=", text):
            offenders.append(f"{path.relative_to(ROOT)}: style attribute in {m.group(0)[:60]}")
        if "javascript:" in text:
            offenders.append(f"{path.relative_to(ROOT)}: javascript: URL")
    assert not offenders, "\n".join(offenders)


def test_allowed_style_hashes_are_the_ones_plotly_creates():
    """The two inline <style> elements plotly.js creates are allowed by hash; an upgrade that changes them
    must update CSP_PLOTLY_STYLE_HASHES (or the pages would report violations)."""
    import plotly
    from django.conf import settings

    bundle = (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_text(encoding="utf-8")
    m = re.search(r"\.textContent='([^']*)',document\.head\.appendChild", bundle)
    assert m, "plotly.min.js no longer injects its map CSS this way: re-check the CSP style hashes"

    def h(text: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

    assert sorted(settings.CSP_PLOTLY_STYLE_HASHES) == sorted([h(""), h(m.group(1))])


def test_production_static_files_are_hashed_and_cached_for_a_year(tmp_path):
    """DEBUG=false: collectstatic writes hashed names; pages link them; whitenoise serves them immutable."""
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_ALLOW_ASYNC_UNSAFE", "DATABASE_URL")}
    env.update({"DEBUG": "false", "SECRET_KEY": "x" * 64, "ALLOWED_HOSTS": "testserver",
                "SLIPWAY_DATA_DIR": str(tmp_path / "data"), "SLIPWAY_STATIC_ROOT": str(tmp_path / "static"),
                "DJANGO_SECURE_SSL_REDIRECT": "false"})
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=env,
                   check=True, timeout=300)
    script = """
import django, re
django.setup()
from django.test import Client
from django.template import engines
html = engines["django"].from_string("{% load static %}{% static 'vendor/plotly/plotly.min.js' %} {% static 'js/slipway.js' %}").render({})
print(html)
c = Client()
for url in html.split():
    r = c.get(url)
    print(r.status_code, url, r["Cache-Control"])
print("login", c.get("/login/", secure=True).status_code)
from django.template import loader
print("500", loader.get_template("500.html").render())
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    urls = lines[0].split()
    assert re.fullmatch(r"/static/vendor/plotly/plotly\.min\.[0-9a-f]{12}\.js", urls[0]), urls
    assert re.fullmatch(r"/static/js/slipway\.[0-9a-f]{12}\.js", urls[1]), urls
    for line in lines[1:3]:
        status, _url, cache = line.split(" ", 2)
        assert status == "200" and "immutable" in cache and "max-age=315360000" in cache, line
    # the server error page (rendered without a request) links the hashed stylesheet: no inline style needed
    assert re.search(r'href="/static/css/slipway\.[0-9a-f]{12}\.css"', out.stdout), out.stdout[-500:]
    assert list((tmp_path / "static" / "js").glob("csp-styles.*.js")), "csp-styles.js is collected"


def test_development_static_urls_carry_their_content_hash_and_are_kept_a_day(tmp_path):
    """DEBUG=true (rundemo): no collectstatic, yet plotly.js is not revalidated on every chart page — its URL
    carries the file's content hash, and an edited file gets a new URL at once."""
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_ALLOW_ASYNC_UNSAFE", "DATABASE_URL")}
    env.update({"DEBUG": "true", "SLIPWAY_DATA_DIR": str(tmp_path / "data")})
    script = """
import django, hashlib, pathlib, plotly
django.setup()
from django.test import Client
from django.template import engines
from portal import staticfiles
html = engines["django"].from_string("{% load static %}{% static 'vendor/plotly/plotly.min.js' %} {% static 'js/slipway.js' %}").render({})
print(html)
c = Client()
for url in html.split():
    r = c.get(url)
    print(r.status_code, url, r["Cache-Control"])
js = pathlib.Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
print(hashlib.md5(js.read_bytes()).hexdigest()[:12])
f = pathlib.Path("TMPDIR") / "edited.js"
f.write_text("a"); first = staticfiles.content_hash(str(f))
import os, time; f.write_text("bb"); os.utime(f, (time.time() + 5, time.time() + 5))
print(first != staticfiles.content_hash(str(f)))
""".replace("TMPDIR", str(tmp_path))
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    urls = lines[0].split()
    assert urls[0] == f"/static/vendor/plotly/plotly.min.js?v={lines[3]}", urls
    assert re.fullmatch(r"/static/js/slipway\.js\?v=[0-9a-f]{12}", urls[1]), urls
    for line in lines[1:3]:
        status, _url, cache = line.split(" ", 2)
        assert status == "200" and cache.startswith("max-age=86400"), line
    assert lines[4] == "True"


def test_bar_widths_come_from_classes_the_stylesheet_defines():
    from apps.common.templatetags.ui import pct

    assert [pct(v) for v in (37.6, 0, None, "x", 150, -3, float("nan"), "42")] == [
        "pct-38", "pct-0", "pct-0", "pct-0", "pct-100", "pct-0", "pct-0", "pct-42"]
    css = (ROOT / "static" / "css" / "slipway.css").read_text()
    assert all(f".pct-{i} {{ width: {i}%; }}" in css for i in range(101))


def test_the_server_error_page_has_no_inline_style_and_renders_without_a_request():
    """Django renders 500.html without a request context (``defaults.server_error``)."""
    from django.template import loader

    html = loader.get_template("500.html").render()
    assert "Something went wrong" in html and 'class="error-page"' in html and "style=" not in html
    assert "/static/css/slipway" in html
