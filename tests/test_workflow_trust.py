"""The infra workflow's trust split, read as YAML: a pull request's code runs with read-only
identities only and is judged by the base branch's guardrails; deploy identities are per
environment; prod deploys the digest that ran in dev and the plan that was approved; every
action is pinned by commit SHA and every install is from a hashed lock. Each test names the
regression it catches."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW_FILE = ROOT / ".github" / "workflows" / "infra.yml"
ACTION_FILE = ROOT / ".github" / "actions" / "relay-image" / "action.yml"
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def workflow() -> dict[str, Any]:
    return yaml.safe_load(WORKFLOW_FILE.read_text())


def steps_of(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job["steps"])


def all_steps() -> list[tuple[str, dict[str, Any]]]:
    found = [(name, step) for name, job in workflow()["jobs"].items() for step in steps_of(job)]
    for path in (ACTION_FILE, ROOT / ".github" / "actions" / "guarded-preview" / "action.yml"):
        action = yaml.safe_load(path.read_text())
        found += [("relay-image", step) for step in action["runs"]["steps"]]
    return found


def uses(job: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    return [s for s in steps_of(job) if str(s.get("uses", "")).startswith(prefix)]


def runs(job: dict[str, Any]) -> str:
    return "\n".join(s.get("run", "") for s in steps_of(job))


def test_no_workflow_level_rights_or_static_tokens() -> None:
    spec = workflow()
    assert spec["permissions"] == {}  # each job asks for what it needs
    assert "env" not in spec  # no workflow-wide secret (the Pulumi token was one)
    assert "${{ secrets." not in WORKFLOW_FILE.read_text()  # OIDC everywhere, nothing long-lived
    for name, job in spec["jobs"].items():
        assert "permissions" in job, name
        assert job["permissions"].get("contents") == "read", name
        writes = {k for k, v in job["permissions"].items() if v == "write"}
        allowed = {"id-token", "pull-requests"} if name == "preview" else {"id-token"}
        assert writes <= allowed, (name, writes)


@pytest.mark.parametrize("where", ["workflow", "relay-image action"])
def test_every_action_is_pinned_by_commit_sha(where: str) -> None:
    steps = [s for n, s in all_steps() if (n == "relay-image") == (where != "workflow")]
    for step in steps:
        action = step.get("uses")
        if action is None or action.startswith("./"):
            continue
        assert PINNED.match(action), f"{action}: pin it by commit SHA (a tag can move)"


def test_no_expression_is_expanded_inside_a_script() -> None:
    """`${{ }}` inside `run:` is pasted into the shell before it runs: a variable or an input
    with a quote or `$(...)` in it becomes code. Values reach scripts through `env:`."""
    for name, step in all_steps():
        assert "${{" not in step.get("run", ""), (name, step.get("name") or step.get("run"))


def test_the_pull_request_preview_is_read_only_and_judged_by_the_base_branch() -> None:
    preview = workflow()["jobs"]["preview"]
    checkouts = uses(preview, "actions/checkout@")
    assert all(c.get("with", {}).get("persist-credentials") is False for c in checkouts)
    [base] = [c for c in checkouts if c.get("with", {}).get("path") == "base"]
    assert base["with"]["ref"] == "${{ github.event.pull_request.base.sha }}"
    script = runs(preview)
    assert "--policy-pack base/policy " in script
    assert '--policy-pack-config "base/policy/config.$STACK.json"' in script
    assert "base/.venv/bin/eventsctl preview guard" in script
    assert ".venv/bin/eventsctl preview guard" not in script.replace("base/.venv", "")
    [image] = [s for s in steps_of(preview) if s.get("uses") == "./.github/actions/relay-image"]
    assert image["with"]["push"] == "false" and "access-token" not in image["with"]
    [auth] = uses(preview, "google-github-actions/auth@")
    assert auth["with"]["service_account"] == "${{ vars.GCP_PREVIEW_SERVICE_ACCOUNT }}"
    [pulumi_auth] = uses(preview, "pulumi/auth-actions@")
    assert pulumi_auth["with"]["scope"] == "team:${{ vars.PULUMI_PREVIEW_TEAM }}"
    assert "pulumi up" not in script


def test_each_environment_has_its_own_deploy_identity() -> None:
    jobs = workflow()["jobs"]
    accounts = {}
    for name, job in jobs.items():
        [auth] = uses(job, "google-github-actions/auth@")
        accounts[name] = auth["with"]["service_account"]
        [pulumi_auth] = uses(job, "pulumi/auth-actions@")
        assert pulumi_auth["with"]["requested-token-type"].endswith(":team"), name
    assert len(set(accounts.values())) == len(accounts), accounts  # none shared
    assert "PREVIEW" in accounts["preview"] and "PREVIEW" in accounts["preview-prod"]
    for name, environment in (("deploy-dev", "dev"), ("deploy-prod", "production")):
        assert jobs[name]["environment"] == environment
        assert "DEPLOY" in accounts[name]


def test_prod_deploys_the_digest_that_ran_in_dev_and_the_approved_plan() -> None:
    jobs = workflow()["jobs"]
    dev_image = next(s for s in steps_of(jobs["deploy-dev"]) if s.get("id") == "image")
    assert dev_image["with"]["push"] == "true"
    assert jobs["deploy-dev"]["outputs"]["digest"] == "${{ steps.image.outputs.digest }}"
    for name in ("preview-prod", "deploy-prod"):
        [image] = [
            s for s in steps_of(jobs[name]) if s.get("uses") == "./.github/actions/relay-image"
        ]
        assert image["with"]["push"] == "false", name  # never rebuilt for prod
        assert image["with"]["digest"] == "${{ needs.deploy-dev.outputs.digest }}", name
    [guarded] = uses(jobs["preview-prod"], "./.github/actions/guarded-preview")
    assert guarded["with"]["stack"] == "prod"  # saves plan-prod.json, guarded
    [upload] = uses(jobs["preview-prod"], "actions/upload-artifact@")
    assert upload["with"]["path"].split() == ["plan-prod.json", "summary-prod.md"]
    deploy = jobs["deploy-prod"]
    assert set(deploy["needs"]) == {"deploy-dev", "preview-prod"}
    assert uses(deploy, "actions/download-artifact@")[0]["with"]["name"] == "plan-prod"
    [up] = [line for line in runs(deploy).splitlines() if "pulumi up" in line]
    assert "--plan plan-prod.json" in up
    assert "pulumi preview" not in runs(deploy)  # no re-planning after approval
    [image] = [s for s in steps_of(deploy) if s.get("uses") == "./.github/actions/relay-image"]
    assert image["with"]["promote-from"] == "dev"


def test_the_image_action_promotes_by_digest_and_never_pushes_a_preview() -> None:
    action = yaml.safe_load(ACTION_FILE.read_text())
    [pin] = [s for s in action["runs"]["steps"] if s.get("id") == "pin"]
    script = pin["run"]
    promote = script.partition("elif")[0]
    assert 'imagetools create --tag "$REPO:$GITHUB_SHA" "$FROM_REPO@$DIGEST"' in promote
    assert 'imagetools inspect "$REPO@$DIGEST"' in promote  # the copy kept the digest
    preview = script.split("else", 1)[1]
    assert "docker build" in preview and "docker push" not in preview


def test_every_install_is_from_a_hashed_lock() -> None:
    for name, job in workflow()["jobs"].items():
        for line in runs(job).splitlines():
            if "pip install" not in line:
                continue
            assert "--require-hashes -r" in line or "--no-deps -e" in line, (name, line)
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "--require-hashes --wheel-dir /wheels -r requirements/relay.lock" in dockerfile
    assert "--no-deps --wheel-dir /wheels '.[ops]'" in dockerfile


GUARDED_PREVIEW = ROOT / ".github" / "actions" / "guarded-preview" / "action.yml"
GATE = "${{ !cancelled() && steps.preview.outcome != 'skipped' }}"


def guarded_preview() -> dict[str, Any]:
    return yaml.safe_load(GUARDED_PREVIEW.read_text())


def test_every_preview_is_guarded_with_overrides_of_its_own_pull_request() -> None:
    """No repository-wide allow list (it outlived its change and applied to both stacks)."""
    text = WORKFLOW_FILE.read_text() + GUARDED_PREVIEW.read_text()
    assert "PREVIEW_ALLOW_URNS" not in text and "--allow " not in text
    jobs = workflow()["jobs"]
    previewing = {n for n, job in jobs.items() if "pulumi preview" in runs(job)}
    via_action = {n for n, job in jobs.items() if uses(job, "./.github/actions/guarded-preview")}
    assert previewing == {"preview"} and via_action == {"deploy-dev", "preview-prod"}
    assert workflow()[True]["pull_request"]["types"] == [
        "opened",
        "synchronize",
        "reopened",
        "edited",
    ]
    # the pull request: its body, read from the event file, never interpolated into a script
    [guard] = [s for s in steps_of(jobs["preview"]) if "preview guard" in s.get("run", "")]
    assert 'jq -r \'.pull_request.body // ""\' "$GITHUB_EVENT_PATH" > pr-body.md' in guard["run"]
    assert "github.event.pull_request.body" not in text
    assert '--adopt-plan "adopt-$STACK.json"' in guard["run"]  # collisions with the live estate
    for name in via_action:  # after the merge: only what the PR's guard comment granted
        assert jobs[name]["permissions"]["pull-requests"] == "read", name


def test_the_guard_is_the_gate_and_runs_after_a_failed_preview() -> None:
    """The preview records its exit code and log instead of stopping the job, so the guard
    (which fails on a failed preview) always runs and the comment says why."""
    jobs = workflow()["jobs"]
    steps = steps_of(jobs["preview"])
    [preview] = [s for s in steps if s.get("id") == "preview"]
    [guard] = [s for s in steps if s.get("id") == "guard"]
    for step in (preview, guarded_preview_step("preview")):
        assert "set +e" in step["run"] and 'echo "code=$?" >> "$GITHUB_OUTPUT"' in step["run"]
        assert '2> "preview-$STACK.log"' in step["run"]
    assert guard["if"] == GATE
    for step in (guard, guarded_preview_step("guard")):
        assert '--preview-exit-code "$PREVIEW_CODE"' in step["run"]
        assert '--preview-log "preview-$STACK.log"' in step["run"]
        assert step["env"]["PREVIEW_CODE"] == "${{ steps.preview.outputs.code }}"
    [adopt] = [s for s in steps if "adopt plan" in s.get("run", "")]
    assert adopt["if"] == GATE and ".venv/bin/eventsctl adopt plan" in adopt["run"]
    assert not adopt["run"].lstrip().startswith("base/")  # the PR's model reads the PR's file


def guarded_preview_step(id_: str) -> dict[str, Any]:
    [found] = [s for s in guarded_preview()["runs"]["steps"] if s.get("id") == id_]
    return found


def test_after_a_merge_overrides_come_from_the_guard_comment_reviewers_saw() -> None:
    script = guarded_preview_step("overrides")["run"]
    assert "select(.merged_at != null" in script  # the merged pull request, not any one
    assert '.user.login == "github-actions[bot]"' in script  # a comment the workflow wrote
    assert '"<!-- eventsctl preview guard: $STACK -->"' in script
    assert "--pr-body guard-comment.md" in guarded_preview_step("guard")["run"]
    [summary] = [s for s in guarded_preview()["runs"]["steps"] if "STEP_SUMMARY" in s["run"]]
    assert summary["if"] == "always()"  # the reasons reach the deployer and the approver


def test_dev_applies_only_the_plan_its_guard_passed() -> None:
    job = workflow()["jobs"]["deploy-dev"]
    names = [s.get("name", "") for s in steps_of(job)]
    [apply] = [s for s in steps_of(job) if "pulumi up" in s.get("run", "")]
    assert "--plan plan-dev.json" in apply["run"]
    [guarded] = uses(job, "./.github/actions/guarded-preview")
    assert guarded["with"]["stack"] == "dev"
    assert names.index(guarded["name"]) < names.index(apply["name"])
    assert '--save-plan "plan-$STACK.json"' in guarded_preview_step("preview")["run"]


@pytest.mark.parametrize(
    ("path", "schema"),
    [
        (WORKFLOW_FILE, "vendor.github-workflows"),
        (ROOT / ".github" / "workflows" / "drift.yml", "vendor.github-workflows"),
        (ACTION_FILE, "vendor.github-actions"),
        (ROOT / ".github" / "actions" / "guarded-preview" / "action.yml", "vendor.github-actions"),
    ],
)
def test_the_workflow_and_the_action_are_valid_for_github(path: Path, schema: str) -> None:
    """GitHub's own schemas (vendored in check-jsonschema, offline): a typo in a key would
    otherwise surface only when the workflow runs."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_preview_comment_classes_every_stack_file_change() -> None:
    preview = workflow()["jobs"]["preview"]
    [step] = [s for s in steps_of(preview) if "topology diff" in s.get("run", "")]
    assert step["if"] == GATE  # even when the guard failed
    assert step["env"]["BASE_SHA"] == "${{ github.event.pull_request.base.sha }}"
    assert 'base/.venv/bin/eventsctl topology diff --from "$BASE_SHA"' in step["run"]
    assert '--markdown "summary-$STACK.md"' in step["run"]
    [main] = [c for c in uses(preview, "actions/checkout@") if "path" not in c.get("with", {})]
    assert main["with"]["fetch-depth"] == 0  # the base commit must be there to diff against
    names = [s.get("name", "") for s in steps_of(preview)]
    assert names.index(step["name"]) < names.index("Comment the summary on the pull request")
