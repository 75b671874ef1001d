"""The infra workflow runs for every change that can change what `pulumi up` does: every project
package the stack program imports, directly or not, is in its path filter."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}


def imported_packages(path: Path, seen: set[Path]) -> set[str]:
    """Project packages `path` imports, followed through the project's own modules."""
    if path in seen or not path.exists():
        return set()
    seen.add(path)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            top = name.split(".")[0]
            if top not in PACKAGES:
                continue
            found.add(top)
            parts = name.split(".")
            module = ROOT / Path(*parts)
            packages = [ROOT / Path(*parts[:i]) / "__init__.py" for i in range(1, len(parts))]
            for candidate in (module.with_suffix(".py"), module / "__init__.py", *packages):
                found |= imported_packages(candidate, seen)
    return found


def test_path_filter_covers_everything_the_stack_program_runs() -> None:
    program = imported_packages(ROOT / "stacks" / "__main__.py", set())
    assert {"components", "outbox"} <= program  # the schema step runs the outbox migrations
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "infra.yml").read_text())
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads on: as True
    for event in ("pull_request", "push"):
        paths = set(triggers[event]["paths"])
        missing = sorted(f"{p}/**" for p in program if f"{p}/**" not in paths)
        assert missing == [], f"{event}: the infra workflow would skip changes to {missing}"


def test_every_preview_and_up_deploys_the_image_built_from_the_commit() -> None:
    """Each job that runs `pulumi preview`/`up` first runs the relay-image action for its stack,
    which pins the pushed image's digest in that run's stack config."""
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "infra.yml").read_text())
    for name, job in workflow["jobs"].items():
        steps = job["steps"]
        runs = [i for i, s in enumerate(steps) if "pulumi " in s.get("run", "")]
        if not runs:
            continue
        [image] = [
            i for i, s in enumerate(steps) if s.get("uses") == "./.github/actions/relay-image"
        ]
        assert image < min(runs), name
        auth = next(
            s for s in steps if str(s.get("uses", "")).startswith("google-github-actions/auth")
        )
        assert auth["with"]["token_format"] == "access_token", name


def test_the_image_action_reads_each_stacks_repository() -> None:
    """The action's one-liner, run as the workflow runs it (committed stack files, no digest)."""
    import re
    import subprocess
    import sys

    action = yaml.safe_load(
        (ROOT / ".github" / "actions" / "relay-image" / "action.yml").read_text()
    )
    command = re.search(r'python -c "(.*)"\)', action["runs"]["steps"][0]["run"]).group(1)
    for stack, project in (("dev", "cotton-erp-dev"), ("prod", "cotton-erp")):
        code = command.replace("${{ inputs.stack }}", stack)
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
        assert out.stdout.strip() == f"asia-south1-docker.pkg.dev/{project}/events/events-infra"
