"""`eventsctl` basics: version, help, `topology show`, and clean one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from events_infra.cli import __version__
from events_infra.cli.app import app

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"eventsctl {__version__}"


def test_help_lists_command_groups() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "topology" in result.stdout


def test_help_imports_no_heavy_library() -> None:
    """`eventsctl --help` must stay instant: no Pulumi, Google clients or pydantic on import."""
    code = (
        "import sys\n"
        "from cli.app import app\n"
        "try:\n"
        "    app(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('pulumi', 'pulumi_gcp', 'google.cloud', 'pydantic', 'psycopg')\n"
        "         if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY=\n" in out.stdout


def test_no_cli_or_library_module_imports_pulumi() -> None:
    """The import boundary, at run time: every module of the libraries, local mode, the strict
    proxy and the CLI loads without Pulumi (an operator's laptop or the relay's image need not
    have it). `events_infra.components` is the one part that needs it."""
    code = (
        "import importlib, pkgutil, sys\n"
        "import events_infra, events_infra.cli\n"
        "names = []\n"
        "for package in (events_infra, events_infra.cli):\n"
        "    for info in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):\n"
        "        if not info.name.endswith('__main__'):\n"
        "            importlib.import_module(info.name)\n"
        "            names.append(info.name)\n"
        "print('MODULES=%d' % len(names))\n"
        "print('PULUMI=' + ','.join(sorted(m for m in sys.modules if m.startswith('pulumi'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "PULUMI=\n" in out.stdout
    assert int(out.stdout.split("MODULES=")[1].split()[0]) > 80  # it really walked them


def test_the_service_libraries_stand_without_the_cli() -> None:
    """`dlq`, `consumer` and `outbox` are libraries: every module imports without the CLI, Typer,
    Rich or Pulumi (a service's base install has none of them)."""
    code = (
        "import importlib, pkgutil, sys\n"
        "import events_infra.consumer, events_infra.dlq, events_infra.outbox\n"
        "for package in (events_infra.consumer, events_infra.dlq, events_infra.outbox):\n"
        "    for info in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):\n"
        "        importlib.import_module(info.name)\n"
        "bad = sorted(m for m in sys.modules if m.startswith('events_infra.cli')\n"
        "             or m.split('.')[0] in ('typer', 'rich', 'pulumi', 'pulumi_gcp'))\n"
        "print('BAD=' + ','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "BAD=\n" in out.stdout


def test_dlq_command_modules_stay_thin() -> None:
    from pathlib import Path

    folder = Path(__file__).resolve().parent.parent / "cli" / "dlq_commands"
    sizes = {p.name: len(p.read_text().splitlines()) for p in folder.glob("*.py")}
    assert len(sizes) >= 6 and max(sizes.values()) <= 200, sizes


def test_topology_show_json_for_prod() -> None:
    result = runner.invoke(app, ["topology", "show", "--stack", "prod", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["project"] == "cotton-erp"
    assert data["dead_letter_subscription"] == "events-dlq-sub"
    by_name = {s["name"]: s for s in data["subscriptions"]}
    assert by_name["events-sub"]["max_delivery_attempts"] == 5
    assert (by_name["events-sub"]["min_backoff"], by_name["events-sub"]["max_backoff"]) == (
        "10s",
        "600s",
    )


def test_topology_show_table() -> None:
    result = runner.invoke(app, ["topology", "show", "--stack", "dev"])
    assert result.exit_code == 0, result.output
    assert "matching-engine" in result.stdout
    assert "dead letters to events-dlq" in result.stdout


def test_unknown_stack_is_one_line_exit_2() -> None:
    result = runner.invoke(app, ["topology", "show", "--stack", "staging"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: unknown stack 'staging'")
    assert "dev, prod" in lines[0]
    assert "Traceback" not in result.output


def test_invalid_stack_file_names_the_key(tmp_path: Path) -> None:
    config = {
        "gcp:project": "cotton-erp",
        "events-infra:subscriptions": [{"name": "orders-sub", "max_delivery_attempts": 2}],
    }
    (tmp_path / "Pulumi.bad.yaml").write_text(yaml.safe_dump({"config": config}))
    result = runner.invoke(
        app, ["topology", "show", "--stack", "bad", "--stacks-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: events-infra:subscriptions[orders-sub].max_delivery_attempts: 2 is outside the "
        "allowed range 5–100 (GCP's limit on delivery attempts before dead-lettering)"
    )
    assert result.stdout == ""


def test_installed_console_script_runs() -> None:
    script = Path(sys.executable).parent / "eventsctl"
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"eventsctl {__version__}"


def test_help_texts_wrap_at_the_terminal_width_not_at_docstring_breaks() -> None:
    """At 80 columns no description line of any command stops short mid-paragraph (Typer
    would keep the docstring's own line breaks)."""
    import typer.main

    def commands(group: Any, path: list[str]) -> list[list[str]]:
        found = []
        for name, command in group.commands.items():
            if hasattr(command, "commands"):  # a group (Typer ships its own click)
                found += commands(command, [*path, name])
            else:
                found.append([*path, name])
        return found

    every = commands(typer.main.get_command(app), [])
    assert ["dlq", "replay"] in every and len(every) > 15
    for path in every:
        out = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"}, terminal_width=80)
        assert out.exit_code == 0, path
        text = out.stdout.split("Usage:", 1)[1].split("╭", 1)[0]
        paragraphs: list[list[str]] = [[]]
        for line in text.splitlines()[1:]:  # after the usage line
            if line.strip():
                paragraphs[-1].append(line.strip())
            else:
                paragraphs.append([])
        for body in paragraphs:
            for line in body[:-1]:
                assert len(line) >= 50, f"{' '.join(path)} --help: ragged line {line!r}"
