"""The infra workflow runs for every change that can change what `pulumi up` does: every project
package the stack program imports, directly or not, is in its path filter."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.support.source_tree import ROOT, imports, module_file


def imported_files(path: Path, module: str | None, seen: set[Path]) -> set[Path]:
    """Project files `path` imports, followed through the project's own modules (a module's
    packages' `__init__` files run too)."""
    if path in seen:
        return set()
    seen.add(path)
    found = {path}
    for name in imports(path, module):
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            candidate = ".".join(parts[:i])
            file = module_file(candidate)
            if file is not None:
                found |= imported_files(file, candidate, seen)
    return found


def test_path_filter_covers_everything_the_stack_program_runs() -> None:
    files = imported_files(ROOT / "stacks" / "__main__.py", None, set())
    folders = {str(f.relative_to(ROOT).parts[0]) for f in files}
    assert {"stacks", "components", "src"} <= folders  # the schema step runs the outbox migrations
    assert module_file("events_infra.outbox.schema") in files
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "infra.yml").read_text())
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads on: as True
    for event in ("pull_request", "push"):
        paths = set(triggers[event]["paths"])
        missing = sorted(f"{p}/**" for p in folders if f"{p}/**" not in paths)
        assert missing == [], f"{event}: the infra workflow would skip changes to {missing}"
        # the relay image is built from every source root the wheel maps (see the Dockerfile)
        assert {"src/**", "cli/**", "components/**", "Dockerfile", "pyproject.toml"} <= paths


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
    code = re.search(r'python -c "(.*)" "\$1"', action["runs"]["steps"][0]["run"]).group(1)
    for stack, project in (("dev", "cotton-erp-dev"), ("prod", "cotton-erp")):
        out = subprocess.run(
            [sys.executable, "-c", code, stack], cwd=ROOT, capture_output=True, text=True
        )
        assert out.stdout.strip() == f"asia-south1-docker.pkg.dev/{project}/events/events-infra"
