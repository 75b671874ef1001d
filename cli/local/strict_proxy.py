"""Starting and stopping the strict Pub/Sub proxy (`python -m pubsub_proxy`) as a process.

Local mode and the test fixtures put it in front of the emulator so that clients see
production's rules; it runs in its own process (its own core, not the caller's GIL) and in its
own process group, stopped like the emulator.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from cli.local.emulator import EmulatorError, free_port, port_in_use, stop_process_group


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
    from pubsub_proxy.control import ProxyControl

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
        sys.executable, "-m", "pubsub_proxy", "--backend", backend, "--host", host,
        "--port", str(port), "--partial-fraction", str(partial_fraction), "--seed", str(seed),
    ]  # fmt: skip
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    try:
        process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=Path(__file__).resolve().parents[2],
        )  # fmt: skip
    finally:
        if log_path:
            log.close()  # type: ignore[union-attr]
    proxy = ProxyProcess(f"{host}:{port}", backend, process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            hint = f"; see {log_path}" if log_path else ""
            raise EmulatorError(
                f"the strict Pub/Sub proxy exited at start (code {process.returncode}){hint}"
            )
        if is_running(proxy.address):
            return proxy
        time.sleep(0.1)
    proxy.stop()
    raise EmulatorError(f"the strict Pub/Sub proxy did not answer on {host}:{port}")
