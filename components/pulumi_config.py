"""The stack being deployed, from the config the Pulumi engine hands the program.

The one place the stack model meets the Pulumi runtime (stack_config itself never imports
Pulumi): values come from the engine instead of a stack file, and the keys it marks secret are
passed on, so a secret left in plain text is refused.
"""

from __future__ import annotations

import json
from typing import Any

from events_infra.stack_config.stack_files import topology_from_config
from events_infra.stack_config.topology import StackConfig


def from_pulumi_config() -> StackConfig:
    """The topology of the stack being deployed, from the config the Pulumi engine passed in.

    Structured values reach the program as JSON strings; scalars as plain strings.
    """
    from pulumi.runtime import config as runtime_config

    merged: dict[str, Any] = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    env_secrets = set(runtime_config.get_config_secret_keys_env())
    secret_keys = {k for k in merged if runtime_config.is_config_secret(k) or k in env_secrets}
    return topology_from_config({k: _decode(v) for k, v in merged.items()}, secret_keys)


def _decode(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value
