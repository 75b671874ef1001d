"""Evaluate the real stack program offline, under Pulumi's own mocks, and record what it declares.

No engine, no credentials, no cloud: `pulumi.runtime.set_mocks` (Pulumi's documented way to
unit-test programs) stands in for the engine, and every resource registration reaches
`RecordingMonitor`, which keeps the inputs and the resource options (protect, parent,
replace_with) that `pulumi up` would send to GCP. The test suite asserts on it, and the program
bench (bench/program_scale.py) times it; ids and emails GCP would assign are computed by
`GcpMocks`, so the values here are stand-ins, never what a live project holds.
"""

from __future__ import annotations

import json
import runpy
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import settings
from pulumi.runtime.settings import SETTINGS
from pulumi.runtime.stack import run_in_stack
from pulumi.runtime.sync_await import _sync_await

PROJECT_NUMBER = "123456789012"


@dataclass
class Declared:
    """One resource the program declared: what the engine would receive for it."""

    type: str
    name: str
    urn: str
    id: str
    inputs: dict[str, Any]
    protect: bool
    parent: str
    replace_with: list[str]
    dependencies: list[str]
    retain_on_delete: bool = False


@dataclass
class Run:
    resources: list[Declared] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    """Component objects the program created (`bus`, `outbox_db`), to resolve their Outputs."""
    exports: dict[str, Any] = field(default_factory=dict)
    """The stack outputs (`pulumi.export`) as the engine receives them, secrets still wrapped."""

    def of_type(self, type_: str) -> list[Declared]:
        return [r for r in self.resources if r.type == type_]

    def named(self, name: str) -> Declared:
        matches = [r for r in self.resources if r.name == name]
        assert len(matches) == 1, f"{len(matches)} resources named {name!r}"
        return matches[0]

    def by_urn(self, urn: str) -> Declared:
        return next(r for r in self.resources if r.urn == urn)


class GcpMocks(pulumi.runtime.Mocks):
    """Computes what GCP would return for the few outputs the program reads (ids, emails)."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        inputs = dict(args.inputs)
        project = inputs.get("project", "mock-project")
        if args.typ == "gcp:pubsub/topic:Topic":
            return f"projects/{project}/topics/{inputs['name']}", inputs
        if args.typ == "gcp:pubsub/subscription:Subscription":
            return f"projects/{project}/subscriptions/{inputs['name']}", inputs
        if args.typ == "gcp:projects/serviceIdentity:ServiceIdentity":
            email = f"service-{PROJECT_NUMBER}@gcp-sa-pubsub.iam.gserviceaccount.com"
            return f"projects/{project}/services/{inputs['service']}", {
                **inputs,
                "email": email,
                "member": f"serviceAccount:{email}",
            }
        if args.typ == "gcp:sql/databaseInstance:DatabaseInstance":
            connection = f"{project}:{inputs['region']}:{inputs['name']}"
            return inputs["name"], {**inputs, "connectionName": connection}
        if args.typ == "random:index/randomPassword:RandomPassword":
            return args.name, {**inputs, "result": "mock-generated-password"}
        if args.typ == "pulumi-python:dynamic:Resource":
            return f"{inputs['instance_connection_name']}/{inputs['database']}", {
                **inputs,
                "schema_version": 1,
                "applied": ["0001_event_outbox.sql"],
            }
        if args.typ == "gcp:serviceaccount/account:Account":
            email = f"{inputs['accountId']}@{project}.iam.gserviceaccount.com"
            return f"projects/{project}/serviceAccounts/{email}", {**inputs, "email": email}
        if args.typ == "gcp:monitoring/dashboard:Dashboard":
            return f"projects/{PROJECT_NUMBER}/dashboards/{args.name}", inputs
        if args.typ == "gcp:projects/iAMCustomRole:IAMCustomRole":
            name = f"projects/{project}/roles/{inputs['roleId']}"
            return name, {**inputs, "name": name}
        if args.typ == "gcp:monitoring/alertPolicy:AlertPolicy":
            name = f"projects/{project}/alertPolicies/{zlib.crc32(args.name.encode())}"
            return name, {**inputs, "name": name}
        if args.typ == "gcp:monitoring/notificationChannel:NotificationChannel":
            return (
                f"projects/{project}/notificationChannels/{zlib.crc32(args.name.encode())}",
                inputs,
            )
        return f"{args.name}-id", inputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], None]:
        return {}, None


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """Pulumi's mock monitor, also keeping the resource options of each registration."""

    def __init__(self, mocks: pulumi.runtime.Mocks, run: Run) -> None:
        super().__init__(mocks)
        self.run = run

    def RegisterResourceOutputs(self, request: Any) -> Any:
        if request.urn.split("::")[-2] == "pulumi:pulumi:Stack":
            self.run.exports = pulumi_mocks.rpc.deserialize_properties(request.outputs, True)
        return super().RegisterResourceOutputs(request)

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            inputs = pulumi_mocks.rpc.deserialize_properties(request.object)
            self.run.resources.append(
                Declared(
                    type=request.type,
                    name=request.name,
                    urn=response.urn,
                    id=response.id,
                    inputs=inputs,
                    protect=bool(request.protect),
                    retain_on_delete=bool(request.retainOnDelete),
                    parent=request.parent,
                    replace_with=list(request.replace_with),
                    dependencies=list(request.dependencies),
                )
            )
        return response


IMAGE_DIGEST = "sha256:" + "ab12" * 16
"""A stand-in for the relay image digest the infra workflow sets after pushing the image
(`pulumi config set --path events-infra:relay.image_digest ...`): the program refuses to run
without one, and an offline evaluation has no image."""


def stack_config(stack_file: Path, image_digest: str | None = IMAGE_DIGEST) -> dict[str, str]:
    """A stack file's config as the engine passes it in the infra workflow: namespaced keys,
    JSON for objects, and the relay image digest the workflow sets (None: as committed)."""
    from events_infra.stack_config.stack_files import read_stack_config

    config = read_stack_config(stack_file)
    relay = config.get("events-infra:relay")
    if image_digest and isinstance(relay, dict):
        config["events-infra:relay"] = {**relay, "image_digest": image_digest}
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}


def _ensure_event_loop() -> None:
    """Pulumi's mocks run on the thread's current event loop. A test that used `asyncio.run`
    (the async writer and consumer tests) leaves the main thread with none set, and
    get_event_loop() then raises instead of creating one: give the thread a loop again."""
    import asyncio

    try:
        loop = asyncio.get_event_loop_policy().get_event_loop()
        if loop.is_closed():
            raise RuntimeError("closed")
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())


def run_program(
    config: dict[str, str],
    stack: str = "test",
    run: Run | None = None,
    secret_keys: list[str] | None = None,
    program_file: Path | None = None,
) -> Run:
    """Evaluate the stack program with `config` under mocks; return what it declared.

    The program is `program_file`, else the `main` of the Pulumi project holding the working
    directory (`stacks/__main__.py` here). `secret_keys` are the keys the engine would mark
    secret (decrypted `secure:` values). Pass `run` to see what was declared even when the
    program raises.
    """
    from events_infra.stack_config.stack_files import find_project, project_program

    if program_file is None:
        project = find_project()
        if project is None:
            raise FileNotFoundError("no Pulumi.yaml here or above: run inside the project")
        program_file = project_program(project)
    run = run if run is not None else Run()
    _ensure_event_loop()
    mocks = GcpMocks()
    pulumi.runtime.set_mocks(
        mocks,
        project="events-infra",
        stack=stack,
        preview=False,
        monitor=RecordingMonitor(mocks, run),
    )
    pulumi.runtime.set_all_config(config, secret_keys or [])
    SETTINGS.rpc_manager.clear()
    SETTINGS.outputs.clear()

    def program() -> None:
        namespace = runpy.run_path(str(program_file), run_name="__main__")
        run.outputs.update(
            {k: namespace[k] for k in ("bus", "outbox_db", "alerting", "access") if k in namespace}
        )

    # A fresh root Stack per run, created the way the engine's entry point creates it, so the
    # program's `pulumi.export`s are registered as stack outputs at the end.
    settings.ROOT.set(None)
    _sync_await(run_in_stack(program))
    return run


def resolve(output: pulumi.Output[Any]) -> Any:
    """The value of an Output once the mocked engine has settled it."""
    return _sync_await(output.future())
