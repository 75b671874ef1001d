"""Shared fixtures. Pulumi programs run under Pulumi's own mocks (tests/pulumi_mocks.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STACKS = ROOT / "stacks"


@pytest.fixture
def prod_config() -> dict:
    """The prod stack file's config block, namespaced, as plain data to mutate in tests."""
    from components.stack_files import read_stack_config

    return read_stack_config(STACKS / "Pulumi.prod.yaml")
