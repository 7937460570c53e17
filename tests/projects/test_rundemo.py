"""``manage.py rundemo`` as a person runs it: pages answer at once while the demo loads in the background,
the console stays short, and e-mail links point at the address the server listens on."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
MAX_CONSOLE_LINES = 12  # start (4) + one per e-mail (3 in the demo) + "Demo loaded"
FIRST_PAGE_SECONDS = 30


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_rundemo_serves_at_once_loads_in_background_and_prints_a_few_lines(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "EMAIL_URL", "SLIPWAY_BASE_URL",
                        "DJANGO_ALLOW_ASYNC_UNSAFE", "SERVING_ACCESS_LOG")}
    env.update({"SLIPWAY_DATA_DIR": str(tmp_path), "PYTHONUNBUFFERED": "1"})
    console = tmp_path / "console.txt"
    with console.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "manage.py", "rundemo", f"127.0.0.1:{port}"], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        started = time.monotonic()
        page = None
        while time.monotonic() - started < 120 and proc.poll() is None:
            try:
                page = requests.get(f"{base}/login/", timeout=5)
                break
            except requests.ConnectionError:
                time.sleep(0.25)
        first_page = time.monotonic() - started
        assert page is not None and page.status_code == 200, console.read_text()
        assert first_page < FIRST_PAGE_SECONDS, f"first page after {first_page:.1f}s"
        assert 'id="demo-loading"' in page.text and "The demo is still loading" in page.text

        # the demo users exist before the demo has loaded: log in at once
        s = requests.Session()
        s.get(f"{base}/login/")
        r = s.post(f"{base}/login/", data={"username": "dana", "password": "slipway-demo",
                                           "csrfmiddlewaretoken": s.cookies["csrftoken"]}, timeout=30)
        assert r.status_code == 200 and "Log out" in r.text

        deadline = time.monotonic() + 420
        while "Demo loaded" not in console.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, console.read_text()
            assert "Loading the demo failed" not in console.read_text(), (tmp_path / "logs" / "demo.log").read_text()
            time.sleep(1)
        time.sleep(1.5)  # the watcher prints e-mails of the last second
        text = console.read_text()
        assert "Demo loaded" in text, text
        assert "demo-loading" not in s.get(f"{base}/", timeout=30).text  # the banner is gone
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    lines = [ln for ln in console.read_text().splitlines() if ln.strip()]
    assert len(lines) <= MAX_CONSOLE_LINES, "\n".join(lines)
    assert not any(ln.lstrip().startswith("{") for ln in lines), "no JSON log lines on the console"
    assert not re.search(r"Warning|WARNING|Traceback", "\n".join(lines)), "\n".join(lines)
    mails = [ln for ln in lines if ln.startswith("e-mail ")]
    assert mails and all("saved as" in ln for ln in mails)
    links = re.findall(r"https?://[^\s/]+", "\n".join(p.read_text() for p in (tmp_path / "mail").glob("*.eml")))
    assert links and set(links) == {base}, links
