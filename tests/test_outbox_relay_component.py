"""The OutboxRelay component under Pulumi's mocks: the relay runs in prod and dev as an
always-on Cloud Run service from the image by digest, as its own service account, reaching the
outbox through the Cloud SQL Auth Proxy sidecar with IAM login."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from events_infra.components.offline import IMAGE_DIGEST, run_program, stack_config

from .conftest import STACKS

SERVICE = "gcp:cloudrunv2/service:Service"


def relay_service(run: Any) -> dict[str, Any]:
    [service] = run.of_type(SERVICE)
    return service


def containers(service: Any) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in service.inputs["template"]["containers"]}


@pytest.mark.parametrize(
    ("stack", "project", "instances", "private"),
    [("prod", "cotton-erp", 2, True), ("dev", "cotton-erp-dev", 1, False)],
)
def test_relay_runs_from_the_image_digest_as_its_own_account(
    request: pytest.FixtureRequest, stack: str, project: str, instances: int, private: bool
) -> None:
    run = request.getfixturevalue(stack)
    service = relay_service(run)
    template = service.inputs["template"]
    relay, proxy = containers(service)["relay"], containers(service)["cloud-sql-proxy"]
    repo = f"asia-south1-docker.pkg.dev/{project}/events/events-infra"
    assert relay["image"] == f"{repo}@{IMAGE_DIGEST}"
    assert relay["args"] == ["outbox", "relay"]
    assert template["serviceAccount"] == f"events-relay@{project}.iam.gserviceaccount.com"
    assert template["scaling"] == {"minInstanceCount": instances, "maxInstanceCount": instances}
    assert relay["resources"]["cpuIdle"] is False  # always-on CPU
    assert service.inputs["ingress"] == "INGRESS_TRAFFIC_INTERNAL_ONLY"
    assert service.inputs["deletionProtection"] is (stack == "prod")
    env = {e["name"]: e["value"] for e in relay["envs"]}
    assert env == {
        "DATABASE_URL": f"host=127.0.0.1 port=5432 dbname=events user=events-relay@{project}.iam"
        " sslmode=disable",
        "EVENTSCTL_TOPIC_PATH": f"projects/{project}/topics/events",
        "EVENTSCTL_PUBSUB_ENDPOINT": "asia-south1-pubsub.googleapis.com:443",
        "EVENTSCTL_HEALTH_PORT": "8080",
        "EVENTSCTL_METRICS_PROJECT": project,
        "EVENTSCTL_METRICS_LOCATION": "asia-south1",
        "EVENTSCTL_METRICS_JOB": "outbox-relay",  # what the outbox alerts filter on
        "EVENTSCTL_PUBLISH_TIMEOUT": "7",  # the batch in flight fits in Cloud Run's 10 s
        "EVENTSCTL_CLAIM_MIB": "32",  # what the container's 512Mi is sized for
    }  # IAM login through the proxy: no password, no secret anywhere in the revision
    assert relay["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 8080}
    assert relay["dependsOns"] == ["cloud-sql-proxy"]
    assert proxy["image"].startswith("gcr.io/cloud-sql-connectors/cloud-sql-proxy:2.")
    assert "--auto-iam-authn" in proxy["args"]
    # SIGTERM reaches both containers at once: the proxy keeps the relay's connections while
    # its last batch settles, and gives up before Cloud Run's SIGKILL 10 s later
    assert "--max-sigterm-delay=9s" in proxy["args"]
    assert proxy["args"][-1].endswith(":asia-south1:" + ("events-outbox" if private else
                                                         "events-outbox-dev"))  # fmt: skip
    assert ("--private-ip" in proxy["args"]) is private
    assert ("vpcAccess" in template) is private


def test_relay_waits_for_its_database_login_and_every_grant(prod: Any) -> None:
    """The first revision must not start before the IAM it runs on exists: its database login,
    publisher, metric writer and the Cloud SQL connect grants (held by the service itself)."""
    service = relay_service(prod)
    user = prod.named("access-relay-database-user")
    publisher = prod.named("access-relay-publisher")
    grants = [
        prod.named(f"access-relay-{role}") for role in ("metricwriter", "client", "instanceuser")
    ]
    assert {user.urn, publisher.urn, *(g.urn for g in grants)} <= set(service.dependencies)
    assert user.inputs["databaseRoles"] == ["events_outbox_relay"]
    assert publisher.inputs["role"] == "roles/pubsub.publisher"
    assert [g.inputs["role"] for g in grants] == [
        "roles/monitoring.metricWriter", "roles/cloudsql.client", "roles/cloudsql.instanceUser",
    ]  # fmt: skip


def test_without_the_image_digest_the_program_stops_with_one_line() -> None:
    config = stack_config(STACKS / "Pulumi.prod.yaml", image_digest=None)
    with pytest.raises(pulumi.RunError) as info:
        run_program(config, stack="prod")
    [line] = [x for x in str(info.value).splitlines() if x.startswith("events-infra:")]
    assert line.startswith("events-infra:relay.image_digest: required key is missing")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"image_digest": "latest"}, "relay.image_digest: 'latest' is not an image digest"),
        ({"min_instances": 0}, "relay.min_instances: 0 is outside the allowed range 1–100"),
        ({"min_instances": 3, "max_instances": 2}, "max_instances 2 is less than min_instances 3"),
        ({"memory": "256Mi"}, "memory 256Mi is under what a 32 MiB claim needs (320Mi"),
        ({"memory": "1Gi", "claim_mib": 200},
         "memory 1Gi is under what a 200 MiB claim needs (1328Mi"),
        ({"proxy_image": "gcr.io/cloud-sql-connectors/cloud-sql-proxy:latest"},
         "relay.proxy_image: 'gcr.io/cloud-sql-connectors/cloud-sql-proxy:latest' is not an "
         "image pinned"),
    ],
)  # fmt: skip
def test_bad_relay_settings_are_one_line(
    prod_config: dict[str, Any], change: dict[str, Any], message: str
) -> None:
    import json

    prod_config["events-infra:relay"] = {**prod_config["events-infra:relay"], **change}
    config = {k: v if isinstance(v, str) else json.dumps(v) for k, v in prod_config.items()}
    with pytest.raises(pulumi.RunError, match=message.replace("(", r"\(")):
        run_program(config)
