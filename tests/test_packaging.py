"""What `pip install events-infra` puts on a machine: one import root and nothing else.

The wheel is built from a copy of the sources in a temp dir (a build in the checkout would
write build/ and *.egg-info there), then installed into a fresh virtualenv beside an unrelated
distribution that owns a top-level `cli` package, as a service's environment might have.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.support.source_tree import ROOT, package_dirs

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def build_wheel(source: Path, out: Path) -> Path:
    """`pip wheel` of `source` with this environment's setuptools (no build isolation: offline)."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(out), str(source)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    [wheel] = out.glob("*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in {d.relative_to(ROOT).parts[0] for d in package_dirs().values()}:
        shutil.copytree(
            ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    return build_wheel(source, tmp_path_factory.mktemp("dist"))


def test_the_wheel_holds_only_the_events_infra_namespace(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"events_infra", f"events_infra-{PYPROJECT['project']['version']}.dist-info"}
    for expected in (
        "events_infra/cli/app.py",
        "events_infra/cli/dlq_commands/replay_cmd.py",
        "events_infra/components/event_bus.py",
        "events_infra/local/proxy/server.py",
        "events_infra/outbox/migrations/0001_event_outbox.sql",
        "events_infra/consumer/migrations/0001_processed_events.sql",
    ):
        assert expected in names


def test_every_source_package_is_listed_for_the_wheel() -> None:
    """pyproject lists packages explicitly (package-dir maps three roots); a new subpackage left
    out of the list would be missing from the wheel and the image."""
    listed = set(package_dirs())
    on_disk = set()
    for package, folder in package_dirs().items():
        for init in folder.rglob("__init__.py"):
            relative = init.parent.relative_to(folder).parts
            on_disk.add(".".join([package, *relative]))
    assert on_disk == listed


def test_the_base_install_leaves_the_operators_dependencies_out() -> None:
    base = " ".join(PYPROJECT["project"]["dependencies"])
    for heavy in ("typer", "rich", "google-cloud-monitoring", "pybreaker", "cloud-sql", "pulumi"):
        assert heavy not in base
    ops = " ".join(PYPROJECT["project"]["optional-dependencies"]["ops"])
    assert "typer" in ops and "rich" in ops and "google-cloud-monitoring" in ops


SERVICE_CHECK = """
import cli, events_infra, events_infra.cli
from events_infra.outbox import Event, enqueue
from events_infra.consumer import Consumer
print(cli.WHO, events_infra.__file__, events_infra.cli.__file__)
"""


def test_installed_beside_an_unrelated_cli_package_neither_breaks(
    wheel: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    (other / "cli").mkdir(parents=True)
    (other / "cli" / "__init__.py").write_text('WHO = "their-cli"\n')
    (other / "pyproject.toml").write_text(
        textwrap.dedent("""
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "their-cli"
        version = "1.0"
        [tool.setuptools]
        packages = ["cli"]
        """)
    )
    their_wheel = build_wheel(other, tmp_path / "their-dist")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = [str(python), "-m", "pip", "install", "--quiet", "--no-index", "--no-deps"]
    subprocess.run([*install, str(their_wheel), str(wheel)], check=True)
    # the dependencies come from this environment's site-packages (a path, so the checkout's
    # editable install of events_infra is not activated there: only the wheel is importable)
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
    )  # fmt: skip
    (site / "zz_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path)

    out = run(str(python), "-c", SERVICE_CHECK)
    assert out.returncode == 0, out.stderr
    who, root, ours = out.stdout.split()
    assert who == "their-cli"
    assert root.startswith(str(site)) and ours.startswith(str(site / "events_infra" / "cli"))
    help_ = run(str(venv / "bin" / "eventsctl"), "--help")
    assert help_.returncode == 0 and "dlq" in help_.stdout, help_.stderr

    # uninstalling either leaves the other whole
    subprocess.run(
        [str(python), "-m", "pip", "uninstall", "--quiet", "-y", "their-cli"], check=True
    )
    assert (site / "events_infra" / "cli" / "app.py").is_file()
    assert run(str(venv / "bin" / "eventsctl"), "--version").stdout.strip() == "eventsctl 0.1.0"
    subprocess.run([*install, str(their_wheel)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "uninstall", "--quiet", "-y", "events-infra"], check=True
    )
    out = run(str(python), "-c", "import cli; print(cli.WHO)")
    assert out.stdout.strip() == "their-cli", out.stderr


BASE_ONLY = """
import importlib, pkgutil, sys

class NotInTheBaseInstall:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"typer", "rich", "click", "pybreaker", "tenacity", "pulumi"} or (
            name.startswith(("google.cloud.monitoring", "google.cloud.sql"))
        ):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NotInTheBaseInstall())
import events_infra.consumer, events_infra.outbox
for package in (events_infra.consumer, events_infra.outbox):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(info.name)
from events_infra.cli import main
sys.argv = ["eventsctl", "--help"]
main()
"""


def test_a_service_install_writes_and_consumes_and_eventsctl_says_which_extra() -> None:
    """Without the `[ops]` extra the writer and consumer libraries import; `eventsctl` says in
    one line what to install instead of an ImportError traceback."""
    out = subprocess.run([sys.executable, "-c", BASE_ONLY], capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "error: eventsctl needs 'typer', which the base install leaves out: "
        "pip install 'events-infra[ops]'"
    ]
