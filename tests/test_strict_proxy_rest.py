"""The strict proxy's HTTP/JSON API: Pub/Sub's REST surface on the same address as gRPC, with
the same production rules, shown against the bare emulator's REST (which skips them) and used
the way a developer would, with plain HTTP and with `gcloud pubsub`."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from events_infra.local.proxy.control import ProxyControl
from events_infra.local.proxy.rest_routes import RestError, match, routes
from events_infra.local.stack import LocalState, env_lines
from tests.support.gcloud import exported, gcloud

SHORT = {"X-Server-Timeout": "2"}
"""A pull on an empty subscription waits; two seconds is enough for a test to call it empty."""


@pytest.fixture
def rest(pubsub: str, strict_proxy: ProxyControl) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://{pubsub}", timeout=30) as client:
        yield client


@pytest.fixture
def bare_rest(bare_emulator: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://{bare_emulator}", timeout=30) as client:
        yield client


@pytest.fixture
def project() -> str:
    return f"rest-{uuid.uuid4().hex[:10]}"


def create_topic(client: httpx.Client, project: str, name: str = "events") -> str:
    reply = client.put(f"/v1/projects/{project}/topics/{name}", json={})
    assert reply.status_code == 200, reply.text
    return f"projects/{project}/topics/{name}"


def create_subscription(client: httpx.Client, topic: str, filter_text: str = "") -> httpx.Response:
    name = topic.replace("/topics/", "/subscriptions/") + f"-{uuid.uuid4().hex[:6]}"
    return client.put(f"/v1/{name}", json={"topic": topic, "filter": filter_text})


def message(data: bytes = b"x", **fields: Any) -> dict[str, Any]:
    return {"data": base64.b64encode(data).decode(), **fields}


def pull_all(client: httpx.Client, subscription: str, expected: int) -> list[dict[str, Any]]:
    """Pull and ack until `expected` messages arrived or two pulls in a row came back empty."""
    got: list[dict[str, Any]] = []
    empty = 0
    while len(got) < expected and empty < 2:
        reply = client.post(f"/v1/{subscription}:pull", json={"maxMessages": 100}, headers=SHORT)
        received = reply.json().get("receivedMessages", []) if reply.status_code == 200 else []
        assert reply.status_code in (200, 504), reply.text  # 504: the 2 s ran out, nothing came
        empty = 0 if received else empty + 1
        if received:
            ack = {"ackIds": [m["ackId"] for m in received]}
            assert client.post(f"/v1/{subscription}:acknowledge", json=ack).status_code == 200
        got += received
    return got


def error_of(reply: httpx.Response) -> dict[str, Any]:
    body = reply.json()
    assert set(body) == {"error"} and body["error"]["code"] == reply.status_code
    return body["error"]


def test_rest_and_grpc_are_one_api_on_one_address(
    rest: httpx.Client, project: str, pubsub: str
) -> None:
    from google.cloud import pubsub_v1

    topic = create_topic(rest, project)
    subscription = create_subscription(rest, topic).json()["name"]
    publisher = pubsub_v1.PublisherClient()  # gRPC, through PUBSUB_EMULATOR_HOST
    assert publisher.get_topic(topic=topic).name == topic
    publisher.publish(topic, b"over grpc", via="grpc").result(timeout=30)
    published = rest.post(f"/v1/{topic}:publish", json={"messages": [message(b"over rest")]})
    assert published.status_code == 200 and len(published.json()["messageIds"]) == 1
    got = pull_all(rest, subscription, expected=2)
    assert sorted(base64.b64decode(m["message"]["data"]) for m in got) == [
        b"over grpc",
        b"over rest",
    ]
    assert pull_all(rest, subscription, expected=1) == []  # both were acknowledged over REST
    listed = rest.get(f"/v1/projects/{project}/topics", params={"pageSize": "10"}).json()
    assert listed == {"topics": [{"name": topic}]}


MIXED_KEYS = [message(orderingKey="a"), message(orderingKey="b")]
BAD_PUBLISHES = {
    "mixed ordering keys": (MIXED_KEYS, "same ordering key"),
    "a goog attribute": ([message(attributes={"googlish": "v"})], "reserved by Google"),
    "101 attributes": ([message(attributes={f"k{i}": "v" for i in range(101)})], "limit is 100"),
}


@pytest.mark.parametrize("case", list(BAD_PUBLISHES))
def test_rest_publish_rules_bare_emulator_accepts_proxy_refuses(
    case: str, rest: httpx.Client, bare_rest: httpx.Client, project: str
) -> None:
    messages, reason = BAD_PUBLISHES[case]
    topic = create_topic(bare_rest, project)
    assert bare_rest.post(f"/v1/{topic}:publish", json={"messages": messages}).status_code == 200
    refused = rest.post(f"/v1/{topic}:publish", json={"messages": messages})
    assert refused.status_code == 400
    error = error_of(refused)
    assert error["status"] == "INVALID_ARGUMENT" and reason in error["message"]


def test_rest_filters_are_checked_at_create_applied_on_pull_and_immutable(
    rest: httpx.Client, bare_rest: httpx.Client, project: str, strict_proxy: ProxyControl
) -> None:
    topic = create_topic(rest, project)
    assert create_subscription(bare_rest, topic, "attributes.x = ").status_code == 200
    refused = create_subscription(rest, topic, "attributes.x = ")
    assert refused.status_code == 400 and "Invalid filter" in error_of(refused)["message"]
    subscription = create_subscription(rest, topic, 'attributes.kind = "keep"').json()["name"]
    kinds = ["keep", "drop", "keep", "drop", "drop"]
    batch = [message(attributes={"kind": kind, "n": str(n)}) for n, kind in enumerate(kinds)]
    assert rest.post(f"/v1/{topic}:publish", json={"messages": batch}).status_code == 200
    got = pull_all(rest, subscription, expected=3)
    assert sorted(m["message"]["attributes"]["n"] for m in got) == ["0", "2"]
    assert strict_proxy.stats()["stats"]["filtered_out"] == 3
    change = {"subscription": {"filter": ""}, "updateMask": "filter"}
    changed = rest.patch(f"/v1/{subscription}", json=change)
    assert changed.status_code == 400 and "cannot be changed" in error_of(changed)["message"]


def test_rest_gets_partial_pulls_and_injected_faults(
    rest: httpx.Client, project: str, strict_proxy: ProxyControl
) -> None:
    topic = create_topic(rest, project)
    subscription = create_subscription(rest, topic).json()["name"]
    strict_proxy.fail("Publish", "UNAVAILABLE")
    failed = rest.post(f"/v1/{topic}:publish", json={"messages": [message()]})
    assert failed.status_code == 503 and error_of(failed)["status"] == "UNAVAILABLE"
    batch = [message(attributes={"n": str(n)}) for n in range(30)]
    assert rest.post(f"/v1/{topic}:publish", json={"messages": batch}).status_code == 200
    strict_proxy.partial_pulls(1.0, seed=4)
    sizes, seen = [], set()
    for _ in range(100):
        reply = rest.post(f"/v1/{subscription}:pull", json={"maxMessages": 20}, headers=SHORT)
        received = reply.json().get("receivedMessages", [])
        sizes.append(len(received))
        if received:
            rest.post(
                f"/v1/{subscription}:acknowledge", json={"ackIds": [m["ackId"] for m in received]}
            )
        seen |= {m["message"]["attributes"]["n"] for m in received}
        if len(seen) == 30:
            break
    assert len(seen) == 30 and all(size < 20 for size in sizes)  # never full, nothing lost
    assert strict_proxy.stats()["stats"]["partial_pulls"] == len(sizes)


def test_rest_errors_are_googles_json_errors(rest: httpx.Client, project: str) -> None:
    topic = create_topic(rest, project)
    cases = {
        "no such method": (rest.get("/v1/nothing/here"), 404, "NOT_FOUND"),
        "wrong verb": (rest.get(f"/v1/{topic}:publish"), 404, "NOT_FOUND"),
        "no such topic": (rest.get(f"/v1/projects/{project}/topics/absent"), 404, "NOT_FOUND"),
        "already exists": (rest.put(f"/v1/{topic}", json={}), 409, "ALREADY_EXISTS"),
        "unknown field": (rest.post(f"/v1/{topic}:publish", json={"bogus": 1}), 400, None),
        "not JSON": (rest.post(f"/v1/{topic}:publish", content=b"{"), 400, None),
        "query on a body method": (
            rest.post(f"/v1/{topic}:publish", params={"messages": "x"}, json={}),
            400,
            None,
        ),
        "bad query value": (
            rest.get(f"/v1/projects/{project}/topics", params={"pageSize": "many"}),
            400,
            None,
        ),
        "bad server timeout": (
            rest.get(f"/v1/{topic}", headers={"X-Server-Timeout": "soon"}),
            400,
            None,
        ),
    }
    for case, (reply, status, code) in cases.items():
        assert reply.status_code == status, (case, reply.text)
        assert error_of(reply)["status"] == (code or "INVALID_ARGUMENT"), case
    ignored = rest.get(f"/v1/{topic}", params={"alt": "json", "$prettyPrint": "false"})
    assert ignored.status_code == 200 and ignored.json()["name"] == topic  # system parameters


def test_the_route_table_is_the_clients_and_covers_the_api() -> None:
    """The routes come from the installed client's REST transport; pinned here so that a client
    upgrade that drops one shows up."""
    table = {(r.http_method, r.template): r.grpc_method for r in routes()}
    expected = {
        ("PUT", "/v1/{name=projects/*/topics/*}"): "/google.pubsub.v1.Publisher/CreateTopic",
        ("POST", "/v1/{topic=projects/*/topics/*}:publish"): "/google.pubsub.v1.Publisher/Publish",
        ("GET", "/v1/{project=projects/*}/topics"): "/google.pubsub.v1.Publisher/ListTopics",
        ("PUT", "/v1/{name=projects/*/subscriptions/*}"): (
            "/google.pubsub.v1.Subscriber/CreateSubscription"
        ),
        ("PATCH", "/v1/{subscription.name=projects/*/subscriptions/*}"): (
            "/google.pubsub.v1.Subscriber/UpdateSubscription"
        ),
        ("POST", "/v1/{subscription=projects/*/subscriptions/*}:pull"): (
            "/google.pubsub.v1.Subscriber/Pull"
        ),
        ("POST", "/v1/{subscription=projects/*/subscriptions/*}:acknowledge"): (
            "/google.pubsub.v1.Subscriber/Acknowledge"
        ),
        ("POST", "/v1/{subscription=projects/*/subscriptions/*}:modifyAckDeadline"): (
            "/google.pubsub.v1.Subscriber/ModifyAckDeadline"
        ),
        ("POST", "/v1/{subscription=projects/*/subscriptions/*}:seek"): (
            "/google.pubsub.v1.Subscriber/Seek"
        ),
        ("PUT", "/v1/{name=projects/*/snapshots/*}"): "/google.pubsub.v1.Subscriber/CreateSnapshot",
        ("GET", "/v1/{resource=projects/*/topics/*}:getIamPolicy"): (
            "/google.iam.v1.IAMPolicy/GetIamPolicy"
        ),
        ("POST", "/v1/{parent=projects/*}/schemas"): "/google.pubsub.v1.SchemaService/CreateSchema",
    }
    assert {key: table.get(key) for key in expected} == expected
    assert len(table) == len(routes())  # one route per verb and path
    route, values = match("PATCH", "/v1/projects/p/subscriptions/s%2Bx?alt=json")
    assert route.grpc_method.endswith("/UpdateSubscription")
    assert values == {"subscription.name": "projects/p/subscriptions/s+x"}
    request = route.request(values, {}, b'{"subscription": {"ackDeadlineSeconds": 20}}')
    assert request.subscription.name == "projects/p/subscriptions/s+x"  # the path wins
    assert request.subscription.ack_deadline_seconds == 20
    route, values = match("GET", "/v1/projects/p/topics/t/subscriptions")
    listing = route.request(values, {"pageSize": ["5"], "pageToken": ["abc"]}, b"")
    assert (listing.topic, listing.page_size, listing.page_token) == (
        "projects/p/topics/t",
        5,
        "abc",
    )
    with pytest.raises(RestError, match="has no method"):
        match("GET", "/v1/projects/p/topics/t:publish")  # `:publish` is not part of a topic id


def test_gcloud_pubsub_works_after_sourcing_local_env(
    pubsub: str, strict_proxy: ProxyControl, project: str, tmp_path: Path
) -> None:
    """What a developer does: `source .eventsctl/local.env`, then gcloud against local mode."""
    state = LocalState(stack="dev", project=project, pubsub_host=pubsub, database_url="x")
    env = exported("\n".join(env_lines(state)))
    config = tmp_path / "gcloud"

    def run(*args: str) -> Any:
        done = gcloud(config, project, "pubsub", *args, "--format=json", env=env)
        return done

    assert run("topics", "create", "events").returncode == 0
    topics = json.loads(run("topics", "list").stdout)
    assert [t["name"] for t in topics] == [f"projects/{project}/topics/events"]
    bad = run(
        "subscriptions", "create", "orders", "--topic=events", "--message-filter=attributes.x ="
    )
    assert bad.returncode != 0 and "Invalid filter" in bad.stderr
    made = run("subscriptions", "create", "orders", "--topic=events",
               '--message-filter=attributes.kind = "order"')  # fmt: skip
    assert made.returncode == 0, made.stderr
    for kind in ("order", "trade", "order"):
        sent = run("topics", "publish", "events", f"--message={kind}", f"--attribute=kind={kind}")
        assert sent.returncode == 0, sent.stderr
    received: list[str] = []
    for _ in range(5):
        pulled = run("subscriptions", "pull", "orders", "--auto-ack", "--limit=10")
        assert pulled.returncode == 0, pulled.stderr
        received += [m["message"]["attributes"]["kind"] for m in json.loads(pulled.stdout or "[]")]
        if len(received) >= 2:
            break
    assert received == ["order", "order"]  # the trade was filtered out, as Pub/Sub would
    assert strict_proxy.stats()["stats"]["filtered_out"] == 1
