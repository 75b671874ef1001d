"""The `relay` section of a stack: the outbox relay deployed on Cloud Run.

The image is referenced by digest, never by tag: a tag can move, and the revision that runs
must be the one that was built, scanned and previewed. The repository is committed in the stack
file; the digest is set by the infra workflow after it builds and pushes the image
(`pulumi config set --path events-infra:relay.image_digest sha256:...`), so it is optional in the
model (the CLI reads prod's stack without it) and required by the stack program.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import model_validator

from events_infra.stack_config.config_types import Strict, between, fail, matches
from events_infra.stack_config.database_config import REGION

_REPOSITORY = re.compile(r"^[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)+$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_MEMORY = re.compile(r"^[0-9]+(Mi|Gi)$")
_PINNED_IMAGE = re.compile(
    r"^[a-z0-9.-]+(/[a-z0-9._-]+)+(:[0-9][A-Za-z0-9._-]*|@sha256:[0-9a-f]{64})$"
)

RELAY_BASE_MIB = 128
RELAY_MIB_PER_CLAIM_MIB = 6
"""The relay's memory floor: its base (interpreter, clients) plus a multiple of the claim
budget, since a claimed event is held as JSON text, decoded, re-encoded and in the request in
flight at once. From bench/relay_memory.py (500 events of 1 MB, one process, peak RSS): 150 MiB
at an 8 MiB budget, 280 at 32, 365 at 64, and 1,195 bounded by rows only."""

CLOUD_SQL_PROXY_IMAGE = "gcr.io/cloud-sql-connectors/cloud-sql-proxy:2.14.3"
"""The Cloud SQL Auth Proxy sidecar (IAM login, TLS to the instance), pinned to a release."""


class RelayDeployConfig(Strict):
    """`eventsctl outbox relay` as an always-on Cloud Run service next to the outbox."""

    image_repository: Annotated[
        str,
        matches(_REPOSITORY, "an image repository such as REGION-docker.pkg.dev/PROJECT/REPO/NAME"),
    ]
    image_digest: (
        Annotated[str, matches(_DIGEST, "an image digest (sha256: and 64 hex digits)")] | None
    ) = None
    region: Annotated[str, matches(REGION, "a GCP region such as asia-south1")] | None = None
    """Default: the outbox database's region."""
    min_instances: Annotated[int, between(1, 100, why="the relay is a loop: at least one runs")] = 1
    max_instances: Annotated[int, between(1, 100)] = 2
    cpu: Literal["1", "2", "4"] = "1"
    memory: Annotated[str, matches(_MEMORY, "a memory size such as 512Mi or 1Gi")] = "512Mi"
    claim_mib: Annotated[int, between(1, 1024, why="MiB of events per claim")] = 32
    """Bytes of events one claim may hold; `memory` must leave room for it (`memory_floor`)."""
    proxy_image: Annotated[
        str, matches(_PINNED_IMAGE, "an image pinned to a version tag or a digest")
    ] = CLOUD_SQL_PROXY_IMAGE

    @model_validator(mode="after")
    def _instances(self) -> RelayDeployConfig:
        if self.max_instances < self.min_instances:
            raise fail(
                "instances",
                "max_instances {hi} is less than min_instances {lo}",
                hi=self.max_instances,
                lo=self.min_instances,
            )
        return self

    @model_validator(mode="after")
    def _memory_fits_the_claim(self) -> RelayDeployConfig:
        number, unit = int(self.memory[:-2]), self.memory[-2:]
        have = number * (1024 if unit == "Gi" else 1)
        need = memory_floor(self.claim_mib)
        if have < need:
            raise fail(
                "memory",
                "memory {memory} is under what a {claim} MiB claim needs ({need}Mi: "
                "{base} + {factor} x claim_mib): raise memory or lower claim_mib",
                memory=self.memory, claim=self.claim_mib, need=need,
                base=RELAY_BASE_MIB, factor=RELAY_MIB_PER_CLAIM_MIB,
            )  # fmt: skip
        return self

    @property
    def image(self) -> str | None:
        """The image by digest, or None until the workflow has set the digest."""
        return f"{self.image_repository}@{self.image_digest}" if self.image_digest else None


def memory_floor(claim_mib: int) -> int:
    """MiB the relay container needs for claims of `claim_mib` MiB."""
    return RELAY_BASE_MIB + RELAY_MIB_PER_CLAIM_MIB * claim_mib
