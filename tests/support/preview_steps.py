"""`pulumi preview --json` documents for the guard tests, in Pulumi's PreviewDigest shape
(`pkg/display`: steps with op, urn, oldState/newState {type, custom, inputs, retainOnDelete},
diffReasons, replaceReasons, detailedDiff; diagnostics with urn, message, severity)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from events_infra.stack_config import pulumi_names as names

BUS = f"{names.EVENT_BUS_TYPE}"
OUTBOX = f"{names.OUTBOX_DATABASE_TYPE}"


def urn(kind: str, name: str, parent: str | None = BUS, stack: str = "prod") -> str:
    chain = "pulumi:pulumi:Stack" + (f"${parent}" if parent else "") + f"${kind}"
    return f"urn:pulumi:{stack}::{names.PROJECT}::{chain}::{name}"


def step(
    op: str,
    kind: str,
    name: str,
    old: dict[str, Any] | None = None,
    new: dict[str, Any] | None = None,
    parent: str | None = BUS,
    retained: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    the_urn = urn(kind, name, parent)

    def state(inputs: dict[str, Any]) -> dict[str, Any]:
        found = {"urn": the_urn, "custom": True, "type": kind, "inputs": inputs, "outputs": {}}
        return found | ({"retainOnDelete": True} if retained else {})

    found: dict[str, Any] = {"op": op, "urn": the_urn}
    if old is not None:
        found["oldState"] = state(old)
    if new is not None:
        found["newState"] = state(new)
    if old is not None and new is not None:
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        found["diffReasons"] = changed
        found["detailedDiff"] = {k: {"kind": "update", "inputDiff": True} for k in changed}
    return found | extra


def write(tmp: Path, *steps: dict[str, Any], diagnostics: list[dict] | None = None) -> Path:
    data: dict[str, Any] = {"steps": list(steps)} if steps else {}
    if diagnostics:
        data["diagnostics"] = diagnostics
    path = tmp / f"preview-{len(list(tmp.glob('preview-*')))}.json"
    path.write_text(json.dumps(data))
    return path
