"""Starting and stopping the strict Pub/Sub proxy (`python -m events_infra.local.proxy`) as a
process.

Local mode and the test fixtures put it in front of the emulator so that clients see
production's rules; it runs in its own process (its own core, not the caller's GIL) and in its
own process group, stopped like the emulator.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from events_infra.local.emulator import (
    EmulatorError,
    free_port,
    port_in_use,
    spawn_and_wait,
    stop_process_group,
)

PROXY_MODULE = "events_infra.local.proxy"
"""What the proxy process runs (`python -m`); `local down` checks a pid's command line for it."""


@dataclass
class ProxyProcess:
    address: str
    backend: str
    process: subprocess.Popen[bytes] | None

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        stop_process_group(self.process.pid, timeout, self.process)
        self.process.wait(timeout)


def is_running(address: str) -> bool:
    """True when a strict proxy answers its control method at `address`."""
    from events_infra.local.proxy.control import ProxyControl

    control = ProxyControl(address)
    try:
        return control.is_proxy()
    finally:
        control.close()


def start(
    backend: str,
    port: int | None = None,
    host: str = "127.0.0.1",
    log_path: Path | None = None,
    partial_fraction: float = 0.0,
    seed: int = 0,
    timeout: float = 30.0,
) -> ProxyProcess:
    """Start a proxy in front of `backend` and wait until it answers."""
    if port is None:
        port = free_port(host)
    elif port_in_use(host, port):
        raise EmulatorError(f"port {port} on {host} is already in use: choose another port")
    args = [
        sys.executable, "-m", PROXY_MODULE, "--backend", backend, "--host", host,
        "--port", str(port), "--partial-fraction", str(partial_fraction), "--seed", str(seed),
    ]  # fmt: skip
    address = f"{host}:{port}"
    process = spawn_and_wait(
        args,
        f"the strict Pub/Sub proxy on {address}",
        lambda: is_running(address),
        log_path,
        timeout,
    )
    return ProxyProcess(address, backend, process)


@contextmanager
def strict_pubsub(project: str = "events-local", log_dir: Path | None = None) -> Iterator[str]:
    """The address of a strict proxy for the duration, with PUBSUB_EMULATOR_HOST set to it:
    the one PUBSUB_EMULATOR_HOST already names, or one started in front of the emulator it
    names, or an emulator and a proxy started here (and stopped at the end)."""
    from events_infra.local import emulator

    previous = os.environ.get("PUBSUB_EMULATOR_HOST")
    if previous and is_running(previous):
        yield previous
        return
    started = None
    backend = previous
    if not backend:
        log = log_dir / "pubsub-emulator.log" if log_dir else None
        started = emulator.start(project=project, log_path=log)
        backend = started.address
    proxy = None
    try:
        proxy = start(backend, log_path=log_dir / "pubsub-proxy.log" if log_dir else None)
        os.environ["PUBSUB_EMULATOR_HOST"] = proxy.address
        yield proxy.address
    finally:
        if proxy:
            proxy.stop()
        if started:
            started.stop()
        if previous is None:
            os.environ.pop("PUBSUB_EMULATOR_HOST", None)
        else:
            os.environ["PUBSUB_EMULATOR_HOST"] = previous
