"""Helpers for the `eventsctl dlq` tests on the real Pub/Sub emulator.

Each test gets its own stack (a stack file in a temp dir, a fresh project id on the emulator,
provisioned from the topology model like `eventsctl local up` does) so tests never share state.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from google.api_core.exceptions import DeadlineExceeded
from google.cloud import pubsub_v1

from events_infra.dlq import messages
from events_infra.local.provision import provision
from events_infra.local.stack import local_topology
from events_infra.pubsub.paths import subscription_path, topic_path
from events_infra.stack_config.stack_files import load_stack
from events_infra.stack_config.topology import StackConfig

SOURCES = ("orders-sub", "billing-sub", "audit-sub")


@dataclass
class DlqStack:
    name: str
    stacks_dir: Path
    topology: StackConfig
    publisher: Any
    subscriber: Any

    @property
    def project(self) -> str:
        return self.topology.project

    @property
    def topic(self) -> str:
        return topic_path(self.project, self.topology.topic.name)

    @property
    def dlq_topic(self) -> str:
        return topic_path(self.project, self.topology.dead_letter.topic)

    @property
    def dlq_subscription(self) -> str:
        return subscription_path(self.project, self.topology.dead_letter.subscription)

    def subscription(self, name: str) -> str:
        return subscription_path(self.project, name)

    def cli_args(self) -> list[str]:
        return ["--stack", self.name, "--stacks-dir", str(self.stacks_dir)]

    def capture(self) -> str:
        """A plain subscription on the events topic that sees every replayed copy."""
        path = self.subscription("capture-sub")
        self.subscriber.create_subscription(
            request={"name": path, "topic": self.topic, "ack_deadline_seconds": 60}
        )
        return path

    def pull(self, subscription: str, max_messages: int = 1000, timeout: float = 1.0) -> list[Any]:
        try:
            response = self.subscriber.pull(
                subscription=subscription, max_messages=max_messages, timeout=timeout
            )
        except DeadlineExceeded:
            return []
        return list(response.received_messages)

    def drain(self, subscription: str, expected: int | None = None, seconds: float = 30) -> list:
        """Pull and ack everything on `subscription` (until `expected` or quiet)."""
        got: list[Any] = []
        deadline = time.monotonic() + seconds
        quiet = 0
        while time.monotonic() < deadline and quiet < 2:
            batch = self.pull(subscription)
            if not batch:
                quiet += 1
                if expected is not None and len(got) < expected:
                    quiet = 0
                continue
            quiet = 0
            self.subscriber.acknowledge(
                subscription=subscription, ack_ids=[m.ack_id for m in batch]
            )
            got += batch
            if expected is not None and len(got) >= expected:
                break
        return got

    def peek_ids(self) -> set[str]:
        """Message ids in the DLQ now (pulled and released at once)."""
        from events_infra.dlq.peek import inspect_letters
        from events_infra.dlq.selection import Selection

        letters = inspect_letters(
            self.subscriber, self.dlq_subscription, Selection(), None, pull_timeout=1.0
        )
        return {letter.message_id for letter in letters}

    def peek(self) -> list[Any]:
        from events_infra.dlq.peek import inspect_letters
        from events_infra.dlq.selection import Selection

        return inspect_letters(
            self.subscriber, self.dlq_subscription, Selection(), None, pull_timeout=1.0
        )

    def seed(
        self,
        count: int,
        source: str = "orders-sub",
        attributes: dict[str, str] | None = None,
        replay_count: int = 0,
        key_prefix: str = "m",
        ordering_key: str = "",
    ) -> list[str]:
        """Publish `count` messages to the dead-letter topic shaped exactly as Pub/Sub
        dead-letters them (the emulator's attribute names and values), for tests that need
        more dead letters than nacking one by one would produce quickly."""
        from google.pubsub_v1.types import PubsubMessage

        from events_infra.pubsub.key_publisher import make_publisher

        keys, batch = [], []
        for i in range(count):
            key = f"{key_prefix}-{i}"
            attrs = {
                messages.SOURCE_SUBSCRIPTION: source,
                messages.SOURCE_PROJECT: self.project,
                messages.DELIVERY_COUNT: "5",
                messages.ORIGINAL_PUBLISH_TIME: "2026-11-29T10:00:00.000Z",
                "key": key,
                **(attributes or {}),
            }
            if replay_count:
                attrs[messages.REPLAY_COUNT] = str(replay_count)
            data = json.dumps({"key": key, "n": i}).encode()
            batch.append(PubsubMessage(data=data, attributes=attrs, ordering_key=ordering_key))
            keys.append(key)
        api = make_publisher()  # one key per request, as production requires
        for start in range(0, len(batch), 1000):
            api.publish(topic=self.dlq_topic, messages=batch[start : start + 1000], timeout=30)
        return keys


def make_stack(
    tmp_path: Path, threshold: int = 5, shorten_backoff: bool = True, **overrides: Any
) -> DlqStack:
    """Write a stack file for a fresh emulator project and provision it (with local mode's
    shortened retry backoff unless `shorten_backoff=False`, which provisions the file's)."""
    name = f"t{uuid.uuid4().hex[:8]}"
    config: dict[str, Any] = {
        "gcp:project": f"test-{uuid.uuid4().hex[:10]}",
        "events-infra:dead_letter": {"ack_deadline": "10s"},
        "events-infra:subscription_defaults": {"ack_deadline": "10s"},
        "events-infra:subscriptions": [{"name": s} for s in SOURCES],
        "events-infra:alerting": {"dlq_backlog": {"threshold": threshold}},
    }
    config.update(overrides)
    stacks_dir = tmp_path / "stacks"
    stacks_dir.mkdir(exist_ok=True)
    (stacks_dir / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump({"config": config}))
    topology = load_stack(name, stacks_dir)
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    # as `eventsctl local up` does: the file keeps the policy's 10–600 s backoff, the emulator
    # gets local mode's shortened one so five failed deliveries take seconds
    provision(publisher, subscriber, local_topology(topology, shorten_backoff))
    return DlqStack(name, stacks_dir, topology, publisher, subscriber)


def dead_letter_for_real(stack: DlqStack, count: int, source: str = "orders-sub") -> list[str]:
    """Publish `count` events and nack every delivery on `source` until Pub/Sub has tried each
    max_delivery_attempts (5) times and dead-lettered it; wait until all are in the DLQ.
    Returns their keys. Bounded: 90 s."""
    keys = [f"real-{i}" for i in range(count)]
    for key in keys:
        stack.publisher.publish(
            stack.topic, json.dumps({"key": key}).encode(), key=key, kind="trade"
        ).result(timeout=30)
    path = stack.subscription(source)
    attempts = stack.topology.subscription(source).max_delivery_attempts
    tried: dict[str, int] = {}
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and (len(tried) < count or min(tried.values()) < attempts):
        batch = stack.pull(path, timeout=1.0)
        if not batch:
            time.sleep(0.1)  # messages are backing off between attempts
            continue
        for received in batch:
            key = received.message.attributes["key"]
            tried[key] = max(tried.get(key, 0), received.delivery_attempt)
        stack.subscriber.modify_ack_deadline(
            subscription=path, ack_ids=[m.ack_id for m in batch], ack_deadline_seconds=0
        )
    # The emulator moves a message to the dead-letter topic when it would deliver it once more,
    # so keep pulling (and nacking) until every message has arrived there.
    while time.monotonic() < deadline:
        for _ in range(10):
            batch = stack.pull(path, timeout=0.5)
            if batch:
                stack.subscriber.modify_ack_deadline(
                    subscription=path, ack_ids=[m.ack_id for m in batch], ack_deadline_seconds=0
                )
            time.sleep(0.2)
        if len(stack.peek_ids()) >= count:
            break
    return keys


def dlq_process(
    stack: DlqStack, pubsub: str, operation: str, audit: Path, *flags: str, output: bool = False
) -> subprocess.Popen:
    """`eventsctl dlq OPERATION --yes --no-snapshot` for `stack` in a process of its own (to be
    killed or signalled); with `output` its stdout and stderr are pipes (text) to read with
    `communicate`, else stdout is discarded (an unread pipe could fill and stall it) and stderr
    goes to `<audit dir>/<operation>.stderr` (read it with `child_stderr` when a test fails)."""
    command = [
        sys.executable, "-c", _AS_IN_A_TERMINAL, "dlq", operation, *stack.cli_args(),
        "--yes", "--no-snapshot", "--audit-log", str(audit), *flags,
    ]  # fmt: skip
    with contextlib.ExitStack() as files:
        stderr: Any = subprocess.PIPE
        if not output:  # the child holds its own copy of the descriptor
            stderr = files.enter_context((audit.parent / f"{operation}.stderr").open("w"))
        return subprocess.Popen(
            command,
            env={**os.environ, "PUBSUB_EMULATOR_HOST": pubsub},
            stdout=subprocess.PIPE if output else subprocess.DEVNULL,
            stderr=stderr,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )


def ended(process: subprocess.Popen) -> str:
    """How an `output=True` child that should still be running ended: its exit code and the end
    of its stderr (a native abort shows only there)."""
    _, stderr = process.communicate(timeout=30)
    return f"exit {process.returncode}: " + "\n".join((stderr or "").splitlines()[-20:])


def child_stderr(audit: Path, operation: str) -> str:
    """The last lines a `dlq_process` child without `output` wrote to stderr."""
    path = audit.parent / f"{operation}.stderr"
    return "\n".join(path.read_text().splitlines()[-20:]) if path.exists() else ""


# The child gets SIGINT as a foreground command in a terminal does. A suite started in the
# background (`make test &`, nohup, some CI runners) inherits SIGINT ignored, Python then installs
# no KeyboardInterrupt handler, and a test's Ctrl-C would never arrive. The child's own interpreter
# installs the handler before it runs the CLI: a `preexec_fn` would do it between fork and exec,
# which is unsafe in a parent with gRPC threads (the child can abort or hang before exec).
_AS_IN_A_TERMINAL = (
    "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('events_infra.cli.app', run_name='__main__', alter_sys=True)"
)


def dlq(stack: DlqStack, *args: str, audit: Path | None = None) -> Any:
    """`eventsctl dlq ARGS[0]` for `stack`, in process (CliRunner); the rest of `args` follow
    the stack flags."""
    from typer.testing import CliRunner

    from events_infra.cli.app import app

    extra = ["--audit-log", str(audit)] if audit else []
    return CliRunner().invoke(app, ["dlq", args[0], *stack.cli_args(), *args[1:], *extra])
