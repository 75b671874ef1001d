"""Running the real `gcloud pubsub` against a local address, as a developer would."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from events_infra.local.emulator import check_prerequisites


def exported(env_file_text: str) -> dict[str, str]:
    """The variables `source FILE` would set, from lines `export NAME=value` (quotes removed)."""
    found = {}
    for line in env_file_text.splitlines():
        if line.startswith("export ") and "=" in line:
            name, _, value = line[len("export ") :].partition("=")
            found[name] = value.strip("'\"")
    return found


def gcloud(
    config_dir: Path, project: str, *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`gcloud ARGS` with a private config dir (nothing read from or written to ~), no
    credentials (local mode has none: the documented emulator setting) and `env` on top."""
    executable = shutil.which("gcloud") or check_prerequisites()
    environment = {
        **os.environ,
        "CLOUDSDK_CONFIG": str(config_dir),
        "CLOUDSDK_CORE_PROJECT": project,
        "CLOUDSDK_AUTH_DISABLE_CREDENTIALS": "true",
        "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
        "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "true",
        "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "true",
        **env,
    }
    return subprocess.run(
        [executable, *args], env=environment, capture_output=True, text=True, timeout=timeout
    )
