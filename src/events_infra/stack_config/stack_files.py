"""Finding and reading `stacks/Pulumi.<stack>.yaml` outside the Pulumi engine.

`eventsctl` and the local mode read the same stack files `pulumi up` reads, through the same
topology model, so `--stack prod` is all an on-call engineer has to know. Inside a Pulumi run the
engine hands the program its config instead (`components.pulumi_config.from_pulumi_config`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from events_infra.errors import EventsInfraError
from events_infra.stack_config.alerting_config import SECRET_PLACEHOLDER
from events_infra.stack_config.topology import (
    CONFIG_NAMESPACE,
    StackConfig,
    TopologyError,
    parse_topology,
)

STACKS_DIR_ENV = "EVENTS_INFRA_STACKS_DIR"


class StackNotFoundError(EventsInfraError, LookupError):
    """No `Pulumi.<stack>.yaml`; the message lists the stacks that do exist."""


def stacks_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """Where stack files live: the override, `$EVENTS_INFRA_STACKS_DIR`, else the stack config
    directory of the Pulumi project that holds the working directory, found as `pulumi` finds
    it (the nearest `Pulumi.yaml` upwards, its `stackConfigDir`), so the CLI works from any
    directory inside the checkout and never depends on where the package is installed."""
    if override:
        return Path(override)
    if os.environ.get(STACKS_DIR_ENV):
        return Path(os.environ[STACKS_DIR_ENV])
    project = find_project()
    if project is None:
        return Path.cwd().resolve() / "stacks"
    return project.parent / (_project_setting(project, "stackConfigDir") or ".")


def find_project(start: Path | None = None) -> Path | None:
    """The nearest `Pulumi.yaml` in `start` (default: the working directory) or above it."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        if (directory / "Pulumi.yaml").is_file():
            return directory / "Pulumi.yaml"
    return None


def project_program(project: Path) -> Path:
    """The stack program a Pulumi project runs: its `main` (a folder means its __main__.py)."""
    main = project.parent / (_project_setting(project, "main") or ".")
    return main / "__main__.py" if main.is_dir() else main


def _project_setting(project: Path, key: str) -> str | None:
    """A string setting of a Pulumi.yaml (None when unset or unreadable)."""
    try:
        data = yaml.safe_load(project.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, str) and value else None


def available_stacks(directory: Path) -> list[str]:
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in directory.glob("Pulumi.*.yaml"))


def stack_file(stack: str, directory: Path) -> Path:
    path = directory / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        known = ", ".join(available_stacks(directory)) or "none"
        raise StackNotFoundError(
            f"unknown stack {stack!r}: no {path} (stacks in {directory}: {known}); "
            f"pass --stack with one of those or set {STACKS_DIR_ENV}"
        )
    return path


def load_stack(stack: str, directory: Path | None = None) -> StackConfig:
    """The validated topology of a named stack, read from its stack file."""
    path = stack_file(stack, directory or stacks_dir())
    config, secret_keys = read_stack_file(path)
    return topology_from_config(config, secret_keys)


def read_stack_config(path: Path) -> dict[str, Any]:
    """The `config:` block of a stack file, keys fully namespaced (`events-infra:topic`);
    encrypted (`secure:`) values read as SECRET_PLACEHOLDER."""
    return read_stack_file(path)[0]


def read_stack_file(path: Path) -> tuple[dict[str, Any], set[str]]:
    """The namespaced config of a stack file and the set of keys holding `secure:` values."""
    try:
        document = yaml.load(path.read_text(), Loader=_UniqueKeyLoader) or {}
    except yaml.YAMLError as err:
        raise TopologyError([f"{path}: not valid YAML: {err}".replace("\n", " ")]) from None
    config = document.get("config") or {}
    if not isinstance(config, Mapping):
        raise TopologyError([f"{path}: 'config' must be a mapping of keys to values"])
    return namespaced_config(config)


def namespaced_config(config: Mapping[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """A stack file's `config:` block with keys fully namespaced and `secure:` values read as
    SECRET_PLACEHOLDER, and the set of keys that held them."""
    namespaced: dict[str, Any] = {}
    secret_keys: set[str] = set()
    for key, value in config.items():
        full = key if ":" in key else f"{CONFIG_NAMESPACE}:{key}"
        namespaced[full], had_secret = _hide_secrets(value)
        if had_secret:
            secret_keys.add(full)
    return namespaced, secret_keys


def _hide_secrets(value: Any) -> tuple[Any, bool]:
    """Replace `{secure: ...}` values (at any depth) by SECRET_PLACEHOLDER; say if any were."""
    if isinstance(value, Mapping):
        if set(value) == {"secure"}:
            return SECRET_PLACEHOLDER, True
        items = {k: _hide_secrets(v) for k, v in value.items()}
        return {k: v for k, (v, _) in items.items()}, any(s for _, s in items.values())
    if isinstance(value, list):
        items_list = [_hide_secrets(v) for v in value]
        return [v for v, _ in items_list], any(s for _, s in items_list)
    return value, False


def topology_from_config(
    config: Mapping[str, Any], secret_keys: set[str] | None = None
) -> StackConfig:
    """Validate namespaced config (`events-infra:*` plus `gcp:project`); other keys are ignored.

    `secret_keys` (namespaced) lets the model refuse secrets stored in plain text.
    """
    prefix = f"{CONFIG_NAMESPACE}:"
    ours = {k[len(prefix) :]: v for k, v in config.items() if k.startswith(prefix)}
    secrets = None
    if secret_keys is not None:
        secrets = {k[len(prefix) :] for k in secret_keys if k.startswith(prefix)}
    return parse_topology(
        ours,
        project=config.get("gcp:project"),
        secret_keys=secrets,
        region=config.get("gcp:region"),
    )


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses duplicate keys instead of keeping the last one silently."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)
