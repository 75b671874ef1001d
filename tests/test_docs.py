"""The documentation's contract: the generated references match the code, the README stays a
short map of docs/, and every link and repository path the docs mention exists."""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import pytest

from events_infra.cli.reference import BLOCKS, cli_reference, stale_blocks
from events_infra.stack_config.reference import (
    generated_block,
    replace_generated,
    stack_config_reference,
)

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
MAX_README_LINES = 150

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~).*?^\1\s*$", re.S | re.M)
CODE_SPAN = re.compile(r"`([^`\n]+)`")
REPO_PATH = re.compile(r"^(src|cli|components|stacks|tests|bench|policy|docs|\.github|\.ci)/\S*$")
MADE_AT_RUNTIME = {"policy/venv"}  # the policy pack's own virtualenv, created by `pulumi preview`


def documents() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_generated_references_match_the_code(name: str) -> None:
    filename, generate = BLOCKS[name]
    committed = generated_block((DOCS / filename).read_text(), name)
    expected = generate()
    if committed != expected:
        diff = difflib.unified_diff(
            committed.splitlines(), expected.splitlines(), "committed", "generated", lineterm=""
        )
        shown = "\n".join(list(diff)[:40])
        pytest.fail(
            f"docs/{filename}: the {name} reference is out of date; run `make docs`\n{shown}"
        )


def test_the_checker_reports_a_stale_block(tmp_path: Path) -> None:
    for name, (filename, _) in BLOCKS.items():
        text = (DOCS / filename).read_text()
        (tmp_path / filename).write_text(replace_generated(text, name, "| stale |\n"))
    assert sorted(stale_blocks(tmp_path)) == sorted(
        f"docs/{filename} ({name})" for name, (filename, _) in BLOCKS.items()
    )


def test_the_references_do_not_depend_on_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    first = (cli_reference(), stack_config_reference())
    monkeypatch.setenv("COLUMNS", "20")
    monkeypatch.setenv("TERM", "dumb")
    assert (cli_reference(), stack_config_reference()) == first


def test_the_stack_config_reference_lists_every_key_the_committed_stacks_use() -> None:
    table = stack_config_reference()
    for key in ("gcp:project", "dead_letter.message_retention", "subscriptions[].ack_deadline",
                "database.migration_principal", "alerting.dlq_backlog.threshold",
                "access.dlq_operators", "relay.image_repository", "pubsub.endpoint"):  # fmt: skip
        assert f"| `{key}` |" in table


def test_the_readme_is_short() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, (
        f"README.md has {len(lines)} lines, at most {MAX_README_LINES}: move the detail to docs/"
    )


def test_the_readme_links_every_doc_and_only_docs_that_exist() -> None:
    linked = {
        target.split("#")[0]
        for target in LINK.findall(README.read_text())
        if target.startswith("docs/")
    }
    present = {f"docs/{p.name}" for p in DOCS.glob("*.md")}
    assert sorted(linked - present) == [], "README.md links docs that do not exist"
    assert sorted(present - linked) == [], "docs not linked from README.md's map"


@pytest.mark.parametrize("doc", documents(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_links_resolve(doc: Path) -> None:
    broken = []
    for target in LINK.findall(FENCE.sub("", doc.read_text())):
        if re.match(r"^[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        file = (doc.parent / path).resolve() if path else doc
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target}: no heading #{anchor} in {file.name}")
    assert broken == []


@pytest.mark.parametrize("doc", documents(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_repository_paths_in_code_spans_exist(doc: Path) -> None:
    missing = []
    for span in CODE_SPAN.findall(FENCE.sub("", doc.read_text())):
        if not REPO_PATH.match(span) or re.search(r"[<>]|NNNN|\.\.\.|…", span):
            continue
        path = span.rstrip("/.,")
        if path not in MADE_AT_RUNTIME and not list(ROOT.glob(path)):
            missing.append(path)
    assert missing == [], f"{doc.name} names paths that do not exist: {missing}"


def anchors(doc: Path) -> set[str]:
    """GitHub's anchors for a document's headings (outside code blocks)."""
    found: set[str] = set()
    for line in FENCE.sub("", doc.read_text()).splitlines():
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            slug = re.sub(r"[^\w\- ]", "", match.group(1).lower()).replace(" ", "-")
            candidate, n = slug, 0
            while candidate in found:
                n += 1
                candidate = f"{slug}-{n}"
            found.add(candidate)
    return found
