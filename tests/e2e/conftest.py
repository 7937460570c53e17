"""Browser tests: Playwright driving Debian's chromium (never a downloaded browser).

Screenshots go to ``test-artifacts/screenshots/`` (look at them). Without /usr/bin/chromium the
browser tests are skipped with a clear reason, except in CI (CI=true), where they fail.

Every page of every browser test is watched for Content-Security-Policy violations (the test fails on
any), and every page a test takes a screenshot of is checked with axe-core (0 critical, 0 serious).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("SLIPWAY_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"CI needs Debian's chromium at {CHROMIUM} (apt-get install chromium)")
        pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM}: apt-get install chromium")
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "headless": True,
        "args": ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync", "--disable-quic"],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1280, "height": 860}}


# Records CSP violations inside the page (runs before any page script; not subject to the page's CSP).
_CSP_RECORDER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__cspViolations.push(e.violatedDirective + " blocked " + (e.blockedURI || "inline") +
                              " at " + e.sourceFile + ":" + e.lineNumber);
});
"""


class CspWatch:
    """Collects CSP violations of every page of a browser context: console messages and DOM events."""

    def __init__(self):
        self.violations: list[str] = []

    def attach(self, context):
        context.add_init_script(_CSP_RECORDER)
        context.on("page", self._watch_page)
        for page in context.pages:
            self._watch_page(page)

    def _watch_page(self, page):
        def on_console(msg):
            if "Content Security Policy" in msg.text or "Content-Security-Policy" in msg.text:
                self.violations.append(f"{page.url}: {msg.text}")

        page.on("console", on_console)

    def collect(self, page) -> list[str]:
        try:
            found = page.evaluate("window.__cspViolations || []")
        except Exception:  # noqa: BLE001 - a closed page or a navigation in flight: the console still saw it
            found = []
        return self.violations + [f"{page.url}: {v}" for v in found]


_WATCHES: list[CspWatch] = []


@pytest.fixture(scope="session")
def browser(browser):
    """Every browser context (pytest-playwright's and those a test opens itself) records CSP violations."""
    original = browser.new_context

    def new_context(*args, **kwargs):
        ctx = original(*args, **kwargs)
        watch = CspWatch()
        watch.attach(ctx)
        ctx._slipway_csp = watch
        _WATCHES.append(watch)
        return ctx

    browser.new_context = new_context
    return browser


@pytest.fixture(autouse=True)
def _no_csp_violations():
    """A browser test fails if any page it opened reported a Content-Security-Policy violation."""
    _WATCHES.clear()
    yield
    seen = [v for w in _WATCHES for v in w.violations]
    _WATCHES.clear()
    assert not seen, "Content-Security-Policy violations:\n" + "\n".join(seen)


def assert_no_csp_violations(page):
    watch = getattr(page.context, "_slipway_csp", None)
    if watch is not None:
        found = watch.collect(page)
        assert not found, "Content-Security-Policy violations:\n" + "\n".join(found)


def assert_accessible(page, name: str = ""):
    """axe-core (shipped by axe-playwright-python) on the page as it is: no critical or serious violation."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page, options={"resultTypes": ["violations"],
                                       "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a",
                                                                             "wcag21aa", "best-practice"]}})
    bad = [v for v in results.response["violations"] if v["impact"] in ("critical", "serious")]
    report = "\n".join(
        f"{v['impact']}: {v['id']} ({v['help']}) at " + ", ".join(" ".join(n["target"]) for n in v["nodes"][:5])
        for v in bad)
    assert not bad, f"axe-core on {name or page.url}:\n{report}"


@pytest.fixture
def shot():
    """``shot(page, "name")`` checks the page with axe-core and for CSP violations, then saves a full-page
    screenshot under test-artifacts/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page, name: str, *, axe: bool = True, javascript: bool = True):
        """``javascript=False`` for a context without JavaScript: nothing can be evaluated in its pages
        (page.evaluate would wait for ever), so neither axe nor the in-page CSP record run there."""
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        if javascript:
            assert_no_csp_violations(page)
        if axe and javascript:
            assert_accessible(page, name)
        return path

    return take


@pytest.fixture
def login(live_server):
    """``login(page, user)`` signs in through the real login form."""
    from tests.conftest import PASSWORD

    def do(page, user, password: str = PASSWORD):
        page.goto(f"{live_server.url}/login/")
        page.fill("#id_username", user.username)
        page.fill("#id_password", password)
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_server.url}/**")
        return page

    return do


@pytest.fixture
def celery_beat(celery_worker, _test_broker, tmp_path):
    """A real ``celery beat`` process (the production scheduler, with the portal's schedule: prediction-log
    drain, monitoring tick, …) sending through the session's broker to the session's worker."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if _test_broker is not None:  # the embedded file-system broker: the beat process writes to the same folders
        data = tmp_path / "beat-data"
        data.mkdir()
        (data / "broker").symlink_to(_test_broker)
        env["SLIPWAY_DATA_DIR"] = str(data)
    log = (tmp_path / "beat.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "portal", "beat", "--loglevel", "INFO",
                             "-s", str(tmp_path / "beat-schedule")], cwd=Path(__file__).resolve().parents[2],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
