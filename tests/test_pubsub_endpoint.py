"""One Pub/Sub endpoint per stack for every publisher: ordered delivery holds only among
publishes of a key in one region (https://cloud.google.com/pubsub/docs/ordering), and the relay
publishes through the stack's locational endpoint, so DLQ replay, restore, `subscription
migrate` must take the same one, not the global endpoint (the consumer publishes nothing)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from events_infra.pubsub import key_publisher


@pytest.fixture
def endpoints(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """Every endpoint a publisher client is made for (the client itself is the real one)."""
    made: list[str | None] = []
    real = key_publisher.make_publisher

    def recording(endpoint: str | None = None) -> Any:
        made.append(endpoint)
        return real(endpoint)

    monkeypatch.setattr(key_publisher, "make_publisher", recording)
    return made


def test_the_dlq_tools_publish_through_the_stacks_endpoint(
    tmp_path: Path, endpoints: list[str | None], pubsub: str
) -> None:
    from events_infra.dlq.context import DlqContext

    config = {
        "gcp:project": "cotton-erp",
        "gcp:region": "asia-south1",
        "events-infra:subscriptions": [{"name": "events-sub"}],
    }
    (tmp_path / "Pulumi.prod.yaml").write_text(yaml.safe_dump({"config": config}))
    ctx = DlqContext("prod", str(tmp_path), None, None, None)
    assert ctx.publisher is not None
    assert endpoints == ["asia-south1-pubsub.googleapis.com:443"]
    # what the relay of the same stack publishes through (outbox.relay_process)
    assert ctx.topology.pubsub.api_endpoint == endpoints[0]
