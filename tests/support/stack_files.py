"""Stack files written for a test: a stack of a fresh name in the test's own stacks dir."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import yaml


def write_stack(tmp_path: Path, config: dict[str, Any]) -> tuple[str, Path]:
    """(stack name, stacks dir) of a new `Pulumi.<name>.yaml` holding `config`."""
    name = f"t{uuid.uuid4().hex[:8]}"
    stacks = tmp_path / "stacks"
    stacks.mkdir(exist_ok=True)
    (stacks / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump({"config": config}))
    return name, stacks
