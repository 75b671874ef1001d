"""One fact, one place: the config model, local mode and the policy pack agree on every limit
and default in events_infra.stack_config.limits (a stack that passes `topology show` passes the
pack)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from events_infra.stack_config import limits

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_committed_policy_config_is_written_from_the_limits(stack: str) -> None:
    committed = json.loads((ROOT / "policy" / f"config.{stack}.json").read_text())
    assert committed == limits.policy_config(production=stack == "prod")


def test_policy_pack_fallbacks_are_the_limits() -> None:
    from events_infra.stack_config import resource_labels
    from policy import rules

    assert rules.DEFAULT_ATTEMPTS == limits.DEFAULT_MAX_DELIVERY_ATTEMPTS
    # the pack reads the label EventBus sets (the pack runs without this package)
    assert resource_labels.ATTEMPTS_OVERRIDE_LABELS == {rules.ATTEMPTS_OVERRIDE_LABEL: "true"}
    assert (rules.MIN_ATTEMPTS, rules.MAX_ATTEMPTS) == (
        limits.MIN_DELIVERY_ATTEMPTS, limits.MAX_DELIVERY_ATTEMPTS,
    )  # fmt: skip
    assert (rules.MIN_BACKOFF_S, rules.MAX_BACKOFF_S) == (
        limits.MIN_BACKOFF_S, limits.MAX_BACKOFF_S,
    )  # fmt: skip


def test_model_defaults_and_local_mode_use_the_limits() -> None:
    from events_infra.local.stack import LOCAL_BACKOFF
    from events_infra.stack_config.topology import SubscriptionSettings

    defaults = SubscriptionSettings()
    assert defaults.max_delivery_attempts == limits.DEFAULT_MAX_DELIVERY_ATTEMPTS
    assert (defaults.min_backoff, defaults.max_backoff) == (
        limits.DEFAULT_MIN_BACKOFF_S, limits.DEFAULT_MAX_BACKOFF_S,
    )  # fmt: skip
    assert LOCAL_BACKOFF == limits.LOCAL_BACKOFF_S


@pytest.mark.parametrize("min_backoff", [limits.MIN_BACKOFF_S - 0.5, limits.MIN_BACKOFF_S])
def test_what_the_model_accepts_the_pack_accepts(min_backoff: float) -> None:
    """The edge of the range: the model refuses exactly what the retry rule refuses."""
    from events_infra.stack_config.topology import parse_topology
    from policy.rules import SUBSCRIPTION, subscription_retry_policy

    values = {"subscriptions": [{"name": "orders-sub", "min_backoff": min_backoff}]}
    try:
        sub = parse_topology(values, "cotton-erp").subscriptions[0]
        model_ok = True
    except Exception:
        model_ok = False
    props = {
        "name": "orders-sub",
        "retryPolicy": {"minimumBackoff": f"{min_backoff:g}s", "maximumBackoff": "600s"},
    }
    config = limits.policy_config(production=True)["subscription-retry-policy"]
    pack_ok = subscription_retry_policy(SUBSCRIPTION, props, config) == []
    assert model_ok == pack_ok == (min_backoff >= limits.MIN_BACKOFF_S)
    if model_ok:
        assert sub.min_backoff_gcp == props["retryPolicy"]["minimumBackoff"]
