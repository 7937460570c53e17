"""What ``rundemo`` tells the pages while the demo still loads in the background.

``rundemo`` starts the portal at once and loads the demo in a child process; while that process runs, every
page shows a banner ("The demo is still loading …") with the loader's latest step. Outside rundemo nothing is
set and the context processor adds nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class DemoLoad:
    process: object  # subprocess.Popen of `manage.py seed_demo`
    log: Path
    started: float
    finished: float | None = None
    returncode: int | None = None

    def poll(self) -> bool:
        """True while the loader still runs."""
        if self.finished is None and self.process.poll() is not None:
            self.finished, self.returncode = time.monotonic(), self.process.returncode
        return self.finished is None

    def last_step(self) -> str:
        try:
            with self.log.open("rb") as f:
                f.seek(0, 2)
                f.seek(max(0, f.tell() - 2048))
                lines = [ln.strip() for ln in f.read().decode("utf-8", "replace").splitlines() if ln.strip()]
        except OSError:
            return ""
        step = lines[-1] if lines else ""
        if step.startswith("[") and "]" in step:  # "[ 12.3s] churn: feature store" → "churn: feature store"
            step = step.split("]", 1)[1].strip()
        return step[:160]


CURRENT: DemoLoad | None = None


def demo_banner(request) -> dict:
    """Template context: ``demo_loading`` while rundemo's background loader runs (else nothing)."""
    load = CURRENT
    if load is None:
        return {}
    if load.poll():
        return {"demo_loading": {"seconds": int(time.monotonic() - load.started), "step": load.last_step(),
                                 "log": str(load.log)}}
    if load.returncode:
        return {"demo_failed": {"log": str(load.log), "returncode": load.returncode}}
    return {}
