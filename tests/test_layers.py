"""The layer contract: which part of `events_infra` may import which.

Top to bottom; a module may import its own package and anything in a lower layer, never a
higher one, and never a sibling package of its own layer (siblings stay independent):

    cli, the stack program (stacks/__main__.py)
    components | local (local mode and the strict proxy)
    dlq | consumer | preview | adopt
    outbox
    db | stack_config
    pubsub (the kernel: limits, filters, attributes, paths, metric names, per-key publisher)
    errors, the package root

Only the components and the stack program import Pulumi; nothing shipped imports the tests or the
benches, or the top-level folder names (`cli`, `components`, ...) the wheel does not install.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.source_tree import ROOT, imports, modules

LAYERS: list[set[str]] = [
    {"events_infra.cli", "<program>"},
    {"events_infra.components", "events_infra.local"},
    {"events_infra.dlq", "events_infra.consumer", "events_infra.preview", "events_infra.adopt"},
    {"events_infra.outbox"},
    {"events_infra.db", "events_infra.stack_config"},
    {"events_infra.pubsub"},
    {"events_infra.errors", "events_infra"},
]
PULUMI = ("pulumi", "pulumi_gcp", "pulumi_random", "pulumi_policy")
MAY_IMPORT_PULUMI = {"events_infra.components", "<program>"}
NOT_SHIPPED = {p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith(".")} | {
    "stack_config", "outbox", "consumer", "dlq", "pubsub_proxy", "local", "preview",
}  # fmt: skip
"""The repository's own folders (the wheel ships none of them at the top level) and the old
top-level package names."""
PROGRAM = ROOT / "stacks" / "__main__.py"


def part_of(module: str) -> str:
    """The layer entry a module belongs to (its longest matching package)."""
    entries = [e for layer in LAYERS for e in layer if e != "<program>"]
    matches = [e for e in entries if module == e or module.startswith(e + ".")]
    return max(matches, key=len)


def layer_of(part: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if part in layer)


def sources() -> list[tuple[str, str, Path]]:
    """(module, part, file) for every shipped module and the stack program."""
    found = [(name, part_of(name), path) for name, path in sorted(modules().items())]
    return [*found, ("<program>", "<program>", PROGRAM)]


def violations(module: str, part: str, path: Path) -> list[str]:
    problems = []
    for imported in sorted(imports(path, module if module != "<program>" else None)):
        top = imported.split(".")[0]
        if top in PULUMI and part not in MAY_IMPORT_PULUMI:
            problems.append(f"{module} imports {imported}: only components import Pulumi")
        elif top in NOT_SHIPPED:
            problems.append(f"{module} imports {imported}, which the wheel does not ship")
        elif top == "events_infra":
            target = part_of(imported)
            if target == part:
                continue
            if layer_of(target) < layer_of(part):
                problems.append(f"{module} imports {imported}: a higher layer ({target})")
            elif layer_of(target) == layer_of(part):
                problems.append(f"{module} imports {imported}: a sibling ({target})")
    return problems


@pytest.mark.parametrize("entry", sorted(e for layer in LAYERS for e in layer))
def test_layer_imports_point_down(entry: str) -> None:
    found = [p for m, part, path in sources() if part == entry for p in violations(m, part, path)]
    assert found == []


def test_the_scan_sees_every_part_and_knows_the_repository_folders() -> None:
    names = {m for m, _, _ in sources()}
    assert {"events_infra.cli.app", "events_infra.components.event_bus",
            "events_infra.local.proxy.server", "events_infra.pubsub.limits"} <= names  # fmt: skip
    assert len(names) > 100
    assert {"tests", "bench", "cli", "components", "stacks", "src", "docs"} <= NOT_SHIPPED


def test_the_contract_catches_an_upward_a_sibling_and_a_pulumi_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "def f():\n"
        "    import pulumi_gcp as gcp\n"
        "    from events_infra.cli.errors import fail\n"
        "    from events_infra.dlq import messages\n"
        "    from events_infra.pubsub.limits import MAX_ATTRIBUTES\n"
    )
    found = violations("events_infra.consumer.m", "events_infra.consumer", module)
    assert {p.split(": ")[1] for p in found} == {
        "a higher layer (events_infra.cli)",
        "a sibling (events_infra.dlq)",
        "only components import Pulumi",
    }
    assert len(found) == 4  # dlq and dlq.messages both count; the kernel import is allowed


def test_relative_imports_resolve_to_their_package(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from ..cli import errors\nfrom . import limits\n")
    assert imports(module, "events_infra.pubsub.m") >= {
        "events_infra.cli.errors",
        "events_infra.pubsub.limits",
    }


def test_no_module_imports_itself_back() -> None:
    """No import cycle between modules, lazy imports included (the components' schema step
    and migration job used to import each other; the step now gets its provider passed in)."""

    def ancestor(package: str, module: str) -> bool:  # initialised before the module anyway
        return module.startswith(package + ".")

    graph = {
        name: {
            m for m in imports(path, name) if m in modules() and m != name and not ancestor(m, name)
        }
        for name, path in modules().items()
    }
    cycles = []
    for start in graph:
        stack, seen = [(start, [start])], set()
        while stack:
            node, trail = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    cycles.append(" -> ".join([*trail, start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*trail, nxt]))
    assert cycles == []


def test_benches_import_no_test_module() -> None:
    """A bench measures the shipped code with its own setup (bench/databases.py); whatever it
    shares with the tests lives in the library (e.g. events_infra.components.offline)."""
    found = {
        path.name: sorted(m for m in imports(path) if m.split(".")[0] == "tests")
        for path in sorted((ROOT / "bench").glob("*.py"))
    }
    assert len(found) >= 5
    assert {name: mods for name, mods in found.items() if mods} == {}
