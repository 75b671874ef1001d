"""Starting and stopping the Google Pub/Sub emulator (`gcloud beta emulators pubsub start`).

Used by `eventsctl local up` and by the test fixtures: both need the real emulator on a free
loopback port, started quickly, reported clearly when Java or the component is missing, and
stopped without leaving a JVM behind (gcloud starts the JVM as a child, so the whole process
group is signalled).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from events_infra.errors import EventsInfraError

EMULATOR_HOST_ENV = "PUBSUB_EMULATOR_HOST"


class EmulatorError(EventsInfraError, RuntimeError):
    """The emulator cannot be started; the message says what to install or change."""


@dataclass
class Emulator:
    host: str
    port: int
    process: subprocess.Popen[bytes] | None
    log_path: Path | None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the emulator and its JVM (the whole process group)."""
        if self.process is None or self.process.poll() is not None:
            return
        stop_process_group(self.process.pid, timeout, self.process)
        self.process.wait(timeout)


def stop_process_group(
    pid: int, timeout: float = 10.0, leader: subprocess.Popen[bytes] | None = None
) -> None:
    """SIGTERM the group led by `pid`, then SIGKILL whatever is left after `timeout`. Pass the
    leader's Popen when it is our child: it is reaped as it exits (a zombie leader would keep the
    group looking alive for the whole timeout)."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if leader is not None:
            leader.poll()
        else:
            with contextlib.suppress(ChildProcessError):  # not our child: nothing to reap
                os.waitpid(pid, os.WNOHANG)
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def is_running(address: str) -> bool:
    """True when something answering like the emulator listens at `host:port`."""
    try:
        with urllib.request.urlopen(f"http://{address}/", timeout=2) as reply:
            return reply.read().strip() == b"Ok"
    except (OSError, urllib.error.URLError, http.client.HTTPException):
        return False  # nothing there, or something that is not the emulator (a gRPC server)


def check_prerequisites() -> str:
    """The gcloud executable, or EmulatorError saying what is missing and how to get it."""
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        raise EmulatorError(
            "gcloud is not installed: install the Google Cloud CLI and its Pub/Sub emulator "
            "(apt-get install google-cloud-cli google-cloud-cli-pubsub-emulator)"
        )
    if shutil.which("java") is None:
        raise EmulatorError(
            "Java is not installed: the Pub/Sub emulator needs a Java 11+ runtime "
            "(apt-get install openjdk-17-jre-headless)"
        )
    return gcloud


def start(
    port: int | None = None,
    host: str = "127.0.0.1",
    project: str = "events-local",
    data_dir: Path | None = None,
    log_path: Path | None = None,
    timeout: float = 60.0,
) -> Emulator:
    """Start the emulator on `host:port` (a free port when None) and wait until it answers."""
    gcloud = check_prerequisites()
    if port is None:
        port = free_port(host)
    elif port_in_use(host, port):
        raise EmulatorError(
            f"port {port} on {host} is already in use: stop what listens there or choose "
            "another port"
        )
    args = [
        gcloud, "beta", "emulators", "pubsub", "start",
        f"--host-port={host}:{port}", f"--project={project}", "--quiet",
    ]  # fmt: skip
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
        args.append(f"--data-dir={data_dir}")
    process = spawn_and_wait(
        args,
        f"the Pub/Sub emulator on {host}:{port}",
        lambda: is_running(f"{host}:{port}"),
        log_path,
        timeout,
        exit_hint="; is the component installed (gcloud components install pubsub-emulator)?",
    )
    return Emulator(host, port, process, log_path)


def spawn_and_wait(
    args: list[str],
    what: str,
    answers: Callable[[], bool],
    log_path: Path | None,
    timeout: float,
    exit_hint: str = "",
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start a server process in its own process group (so stopping it takes its children
    too), output to `log_path`, and wait until `answers()`; EmulatorError if it exits or stays
    silent for `timeout` seconds (then it is stopped)."""
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    try:
        process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=cwd,
        )  # fmt: skip
    finally:
        if log_path:
            log.close()  # type: ignore[union-attr]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            hint = f"; see {log_path}" if log_path else ""
            raise EmulatorError(
                f"{what} exited at start (code {process.returncode}){hint}{exit_hint}"
            )
        if answers():
            return process
        time.sleep(0.1)
    stop_process_group(process.pid, leader=process)
    raise EmulatorError(f"{what} did not answer in {timeout:.0f} s{exit_hint}")
