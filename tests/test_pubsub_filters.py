"""The Pub/Sub filter language as production parses and applies it (events_infra.pubsub.filters)."""

from __future__ import annotations

import re

import pytest

from events_infra.pubsub.filters import FilterError, parse
from events_infra.stack_config.topology import SubscriptionConfig

ATTRS = {"domain": "com", "region": "eu-west", "iana.org/lang": "en", "empty": ""}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", True),
        ("attributes:domain", True),
        ("attributes:missing", False),
        ('attributes.domain = "com"', True),
        ('attributes.domain = "org"', False),
        ('attributes.domain != "org"', True),
        ('attributes.missing != "org"', True),  # a missing key is unequal to anything
        ('attributes.missing = ""', False),
        ('attributes.empty = ""', True),
        ('hasPrefix(attributes.region, "eu-")', True),
        ('hasPrefix(attributes.region, "us-")', False),
        ('hasPrefix(attributes.missing, "")', False),
        ("NOT attributes:domain", False),
        ("-attributes:domain", False),
        ("NOT attributes:missing", True),
        ('attributes:domain AND attributes.region = "eu-west"', True),
        ('attributes:domain AND attributes.region = "us"', False),
        ('attributes:missing OR attributes.region = "eu-west"', True),
        ("attributes:missing OR NOT attributes:domain", False),
        (
            '(attributes:missing OR attributes:domain) AND NOT hasPrefix(attributes.region, "us")',
            True,
        ),
        ('attributes."iana.org/lang" = "en"', True),
        ('attributes:"iana.org/lang"', True),
        ('attributes.domain = "c\\x6fm"', True),
        ('attributes.domain = "\\u0063om"', True),
        ('attributes.domain = "\\143om"', True),
        ("NOT (NOT attributes:domain)", True),
    ],
)
def test_filters_match_as_documented(text: str, expected: bool) -> None:
    assert parse(text).matches(ATTRS) is expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('attributes.domain = = "com"', "expected string"),
        ('attributes.domain == "com"', "expected string"),
        ("attributes.domain = com", "expected string"),
        ("attributes:a AND attributes:b OR attributes:c", "AND and OR cannot be mixed"),
        ("attributes:a and attributes:b", "unexpected 'and'"),
        ('data = "x"', "a condition starts with attributes"),
        ("(attributes:a", "filter ends early"),
        ("attributes:a)", "unexpected ')'"),
        ('hasPrefix(attributes.a "x")', "expected ,"),
        ('attributes.a = "\\q"', "invalid escape"),
        ("attributes:a AND", "filter ends early"),
        ('attributes.a = "x" ~', "unexpected character '~'"),
    ],
)
def test_invalid_filters_are_refused_naming_the_problem(text: str, why: str) -> None:
    with pytest.raises(FilterError, match=re.escape(why)):
        parse(text)


def test_filter_over_256_bytes_is_refused() -> None:
    text = f'attributes.k = "{"x" * 240}"'
    assert len(text.encode()) > 256
    with pytest.raises(FilterError, match="the limit is 256"):
        parse(text)
    parse(f'attributes.k = "{"x" * 200}"')  # under the limit parses


def test_every_subscriptions_delivery_filter_parses_and_targets_replays() -> None:
    """The replay filter the stack gives every subscription is valid for production and admits
    un-targeted messages plus replays aimed at that subscription only."""
    for user_filter in (None, 'attributes.event_type = "trade.created"'):
        sub = SubscriptionConfig(name="matching-engine", filter=user_filter)
        found = parse(sub.delivery_filter)
        base = {"event_type": "trade.created"}
        assert found.matches(base)
        assert found.matches(base | {"replay_target": "matching-engine"})
        assert not found.matches(base | {"replay_target": "notifications"})
        if user_filter:
            assert not found.matches({"event_type": "trade.updated"})
