"""Which packages may import Pulumi: only the components and the stack program. The CLI, the
stack model, the relay, the consumer library, the DLQ library and the proxy must run where
Pulumi is not installed (the container image has none), so no module there imports it, not even
lazily inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PULUMI_FREE = ("cli", "stack_config", "outbox", "consumer", "dlq", "pubsub_proxy")
FORBIDDEN = ("pulumi", "pulumi_gcp", "pulumi_random", "pulumi_policy", "components")


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", PULUMI_FREE)
def test_package_never_imports_pulumi_or_the_components(package: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(imports(path) & set(FORBIDDEN))
        for path in (ROOT / package).rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_scan_sees_a_pulumi_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    import pulumi_gcp as gcp\n    from components.x import y\n")
    assert imports(module) >= {"pulumi_gcp", "components"}
