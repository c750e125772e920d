"""The lock file, pyproject's ranges and the installed packages agree.

`scripts/bootstrap` installs `requirements/dev.lock`, so a fresh clone next month runs the versions
tested today; these tests fail when the lock falls out of step with `pyproject.toml`.
"""

from __future__ import annotations

import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]

# Packages whose internals we use (the lean route, the middleware stack, the SSE response): a
# release outside the tested range must not be installed silently.
FRAMEWORK_PACKAGES = ("fastapi", "starlette", "uvicorn", "sse-starlette")


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    lines = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    return [Requirement(line) for line in lines]


def _locked() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for raw in (ROOT / "requirements" / "dev.lock").read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, _, pinned = line.partition("==")
        assert pinned, f"every line of the lock pins one version with ==: {raw!r}"
        pins[canonicalize_name(name)] = Version(pinned)
    return pins


def test_every_declared_dependency_is_locked_inside_its_range() -> None:
    locked = _locked()
    for requirement in _declared():
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement.name} is declared in pyproject.toml but not locked"
        assert requirement.specifier.contains(locked[name], prereleases=True), (
            f"the lock pins {requirement.name}=={locked[name]}, outside pyproject's {requirement.specifier}"
        )


@pytest.mark.parametrize("package", FRAMEWORK_PACKAGES)
def test_framework_packages_have_a_tested_upper_bound(package: str) -> None:
    by_name = {canonicalize_name(r.name): r for r in _declared()}
    requirement = by_name[canonicalize_name(package)]
    assert any(spec.operator in ("<", "<=", "~=", "==") for spec in requirement.specifier), (
        f"{package} needs an upper bound: we rely on its internals"
    )
    assert requirement.specifier.contains(_locked()[canonicalize_name(package)])


def test_the_environment_runs_the_locked_versions() -> None:
    """The suite runs on what the lock says, so a green run vouches for the lock."""
    mismatched = []
    for name, pinned in _locked().items():
        try:
            installed = Version(version(name))
        except PackageNotFoundError:
            mismatched.append(f"{name}: locked {pinned}, not installed")
            continue
        if installed != pinned:
            mismatched.append(f"{name}: locked {pinned}, installed {installed}")
    hint = "run scripts/bootstrap (or scripts/lock to move the lock): "
    assert not mismatched, hint + "; ".join(mismatched)
