"""The events-infra stack program: `pulumi preview/up --stack <name>` runs this file.

Everything it declares comes from `stacks/Pulumi.<stack>.yaml` through the topology model; a
config problem stops the run before any resource is declared, with one line per problem.
"""

import gc

import pulumi

from events_infra.components.access import Access
from events_infra.components.alerting import DlqAlerting
from events_infra.components.args import (
    AccessArgs,
    DlqAlertingArgs,
    EventBusArgs,
    OutboxDatabaseArgs,
)
from events_infra.components.event_bus import EventBus
from events_infra.components.outbox_database import OutboxDatabase, iam_database_user
from events_infra.components.outbox_relay import OutboxRelay, OutboxRelayArgs
from events_infra.components.project_apis import ProjectApis, wait_for_apis
from events_infra.components.pulumi_config import from_pulumi_config
from events_infra.stack_config import pulumi_names
from events_infra.stack_config.apis import required_apis
from events_infra.stack_config.database_config import DatabaseConfig
from events_infra.stack_config.pulumi_names import RELAY_SERVICE
from events_infra.stack_config.topology import TopologyError

# Declaring thousands of resources creates millions of short-lived objects; with CPython's
# default thresholds the cyclic GC rescans the growing heap so often that evaluation time grows
# quadratically (bench/program_scale.py: 8.8 s -> 3.6 s for 1,000 subscriptions).
gc.set_threshold(50_000, 20, 10)

try:
    topology = from_pulumi_config()
except TopologyError as err:
    raise pulumi.RunError(f"invalid stack config:\n{err}") from None
if topology.relay is not None and topology.relay.image is None:
    raise pulumi.RunError(
        "invalid stack config:\nevents-infra:relay.image_digest: required key is missing: the "
        "infra workflow sets it after pushing the image; by hand: pulumi config set --path "
        "events-infra:relay.image_digest sha256:<digest of the pushed image>"
    )

# the APIs first; every resource after them waits for all of them (403 SERVICE_DISABLED else)
apis = ProjectApis("apis", topology.project, required_apis(topology))
pulumi.runtime.register_stack_transformation(wait_for_apis(apis))

bus = EventBus(pulumi_names.BUS, EventBusArgs.from_stack(topology))

pulumi.export("project", topology.project)
pulumi.export("topic", bus.topic.name)
pulumi.export("topic_id", bus.topic.id)
pulumi.export("dead_letter_topic", bus.dead_letter_topic.name)
pulumi.export("dead_letter_topic_id", bus.dead_letter_topic.id)
pulumi.export("dead_letter_subscription", bus.dead_letter_subscription.name)
pulumi.export("dead_letter_subscription_id", bus.dead_letter_subscription_id)
pulumi.export("subscription_ids", bus.subscription_ids)
pulumi.export("pubsub_service_agent", bus.service_agent.email)

outbox_db = (
    OutboxDatabase(pulumi_names.outbox_database(), OutboxDatabaseArgs.from_stack(topology))
    if topology.database is not None
    else None
)
if outbox_db is not None:
    pulumi.export("outbox_connection_name", outbox_db.connection_name)
    pulumi.export("outbox_database", outbox_db.database_name)
    if outbox_db.schema is not None:
        pulumi.export("outbox_schema_version", outbox_db.schema.schema_version)
# further outbox databases (a service's own each), with a relay each
outbox_dbs = {
    o.name: OutboxDatabase(
        pulumi_names.outbox_database(o.name), OutboxDatabaseArgs.from_stack(topology, o)
    )
    for o in topology.outboxes
}
if outbox_dbs:
    pulumi.export("outboxes", {k: db.connection_name for k, db in outbox_dbs.items()})

alerting = DlqAlerting("alerting", DlqAlertingArgs.from_stack(topology, pulumi.get_stack()))
pulumi.export("dlq_backlog_alert_policy", alerting.dlq_backlog_policy.name)
if alerting.dashboard is not None:
    pulumi.export("dashboard", alerting.dashboard.id)

access = Access(pulumi_names.ACCESS, AccessArgs.from_stack(topology), bus, outbox_db, outbox_dbs)
pulumi.export("relay_service_account", access.relay.email if access.relay else None)


def declare_relay(
    name: str, database: DatabaseConfig, db: OutboxDatabase, outbox: str | None = None
) -> OutboxRelay:
    """The relay of one outbox database: a Cloud Run service of its own, bound to it."""
    assert topology.relay is not None
    return OutboxRelay(
        name,
        OutboxRelayArgs(
            project=topology.project,
            region=topology.relay.region or database.region,
            image=topology.relay.image or "",
            service_account_email=access.relay_email,
            topic_id=bus.topic.id,
            pubsub_endpoint=topology.pubsub.api_endpoint,
            instance_connection_name=db.connection_name,
            database=db.database_name,
            database_user=access.relay_email.apply(lambda e: iam_database_user(e)[0]),
            private_network=database.private_network,
            subnetwork=database.subnetwork,
            min_instances=topology.relay.min_instances,
            max_instances=topology.relay.max_instances,
            cpu=topology.relay.cpu,
            memory=topology.relay.memory,
            claim_mib=topology.relay.claim_mib,
            proxy_image=topology.relay.proxy_image,
            production=topology.production,
            labels=topology.resource_labels(),
        ),
        opts=pulumi.ResourceOptions(depends_on=access.relay_dependencies(outbox)),
    )


if topology.relay is not None and outbox_db is not None and topology.database is not None:
    relay = declare_relay(RELAY_SERVICE, topology.database, outbox_db)
    pulumi.export("relay_service", relay.service.name)
    # what the PR preview deploys again (it builds the image but never pushes it)
    pulumi.export("relay_image_digest", topology.relay.image_digest)
    relays = {
        o.name: declare_relay(o.relay_service, o.database, outbox_dbs[o.name], o.name)
        for o in topology.outboxes
    }
    if relays:
        pulumi.export("relay_services", {k: r.service.name for k, r in relays.items()})
