"""The reproducible install: requirements.lock pins every dependency of pyproject.toml (incl. the dev extra)
to an exact version, and every install path (README, .ci/run, Dockerfile) installs through it.

Refresh the lock after changing dependencies (keeps every other pin):
    .venv/bin/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 -o requirements.lock
"""

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"


def _pins() -> dict[str, Requirement]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        req = Requirement(line)
        assert len(req.specifier) == 1 and next(iter(req.specifier)).operator == "==", f"not an exact pin: {line}"
        pins[canonicalize_name(req.name)] = req
    return pins


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]


def test_lock_pins_every_declared_dependency_within_its_range():
    pins = _pins()
    for req in _declared():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is in pyproject.toml but not in requirements.lock: re-run uv pip compile"
        pinned = next(iter(pins[name].specifier)).version
        assert req.specifier.contains(pinned, prereleases=True), (
            f"requirements.lock pins {req.name}=={pinned}, outside pyproject's {req.specifier}: re-run uv pip compile")


def test_lock_records_the_command_that_made_it():
    head = LOCK.read_text().splitlines()[:3]
    assert any("uv pip compile pyproject.toml --extra dev" in line for line in head)


def test_installed_environment_is_the_locked_one():
    """What this test run imports is what the lock says (the venv was installed with -c requirements.lock)."""
    env = default_environment()
    wrong = []
    for name, req in _pins().items():
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            wrong.append(f"{name} missing")
            continue
        if not req.specifier.contains(installed, prereleases=True):
            wrong.append(f"{name} {installed} (lock: {req.specifier})")
    assert not wrong, "installed packages differ from requirements.lock: " + ", ".join(wrong)


def test_every_install_path_uses_the_lock():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"pip install[^\n&]*", readme)
    dev_installs = [c for c in commands if '".[dev]"' in c]
    assert dev_installs and all("-c requirements.lock" in c for c in dev_installs), dev_installs
    assert '-c requirements.lock -e ".[dev]"' in (ROOT / ".ci" / "run").read_text()
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY pyproject.toml README.md requirements.lock" in dockerfile
    assert "pip install -c requirements.lock ." in dockerfile
