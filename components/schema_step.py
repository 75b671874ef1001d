"""`SchemaStep`: what every Pulumi dynamic provider that applies the outbox schema shares.

`MigrationProvider` (components/outbox_schema.py, from the machine running `pulumi up`) and
`JobMigrationProvider` (components/migration_job.py, a Cloud Run job inside the VPC) both derive
from it; `OutboxDatabase` picks one and hands it to `OutboxSchema`.
"""

from __future__ import annotations

from typing import Any

from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider, UpdateResult

PROVIDER_KEY = "provider_class"
"""The input naming the provider's class (module.qualname), so a move of it re-runs once."""


def provider_class(provider: ResourceProvider) -> str:
    return f"{type(provider).__module__}.{type(provider).__qualname__}"


class SchemaStep(ResourceProvider):
    """What every way of applying the schema shares: re-run when one of `rerun_on` changes,
    never drop anything on delete. Subclasses say how to run (`_run`) and name the result."""

    rerun_on: tuple[str, ...] = ()

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=self._id(props), outs=self._run(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """Re-run when an input in `rerun_on` or the provider's class changed. Pulumi keeps the
        provider pickled by reference to its class and unpickles the recorded one to refresh
        or delete; one update under a moved class (components.* -> events_infra.components.*)
        records the new reference (the migrations are idempotent: the re-run applies nothing)."""
        keys = (*self.rerun_on, PROVIDER_KEY)
        changed = [key for key in keys if olds.get(key) != news.get(key)]
        return DiffResult(changes=bool(changed), replaces=[], delete_before_replace=False)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=self._run(news))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """Deliberately nothing: removing the resource from a stack must not drop the outbox."""

    def _id(self, props: dict[str, Any]) -> str:
        raise NotImplementedError

    def _run(self, props: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError
