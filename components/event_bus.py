"""`EventBus`: the events topic, its dead-letter topic and subscription, the consumer
subscriptions, and the IAM grants without which dead-lettering silently does nothing.

Every child gets an explicit GCP name from the spec model and a Pulumi name derived from the
component name plus that GCP name, so the CLI finds resources without reading Pulumi state and
removing one subscription never touches another.
"""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from events_infra.components.args import EventBusArgs
from events_infra.stack_config import pulumi_names as names
from events_infra.stack_config.resource_labels import (
    dead_letter_labels,
    subscription_labels,
    topic_labels,
)
from events_infra.stack_config.topology import SubscriptionConfig

NEVER_EXPIRE = ""
"""`expiration_policy.ttl = ""` is GCP's "never expire"; the default deletes a subscription
after 31 idle days, and a dead-letter subscription is idle by design."""

PUBSUB_SERVICE = "pubsub.googleapis.com"


class EventBus(pulumi.ComponentResource):
    """The Pub/Sub side of the event backbone for one stack.

    Outputs (set before `register_outputs`): `topic`, `dead_letter_topic`,
    `dead_letter_subscription` and `subscriptions` (name -> resource), and `subscription_ids`
    / `dead_letter_subscription_id`, which resolve only once the service agent's grants exist
    (a subscription without them would never dead-letter anything).
    """

    def __init__(
        self,
        name: str,
        spec: EventBusArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(names.EVENT_BUS_TYPE, name, None, opts)
        self._name = name
        self._spec = spec
        project = spec.project
        # Production stacks protect topics and subscriptions: a stray `pulumi destroy` or a
        # rename would otherwise drop the backlog with the resource.
        protect = spec.production
        # Retained data resources are forgotten, not deleted, when removed or replaced: a
        # forced replacement of a named one stops at 409 ALREADY_EXISTS with the data intact.
        retain = spec.retain_data

        # The Pub/Sub service agent may not exist yet in a fresh project; creating the identity
        # (idempotent) returns its email, so no project number is ever hard-coded.
        self.service_agent = gcp.projects.ServiceIdentity(
            f"{name}-pubsub-agent",
            project=project,
            service=PUBSUB_SERVICE,
            opts=pulumi.ResourceOptions(parent=self),
        )
        agent_member = self.service_agent.email.apply(lambda email: f"serviceAccount:{email}")

        # A CMEK topic is created only if the Pub/Sub service agent can use the key: Pub/Sub
        # checks encrypt/decrypt on the key at create time (pubsub/docs/encryption), so the grant
        # comes first and both topics depend on it.
        self.kms_grant: gcp.kms.CryptoKeyIAMMember | None = None
        topic_deps: list[pulumi.Resource] = []
        if spec.topic.kms_key_name:
            self.kms_grant = gcp.kms.CryptoKeyIAMMember(
                f"{name}-pubsub-agent-kms",
                crypto_key_id=spec.topic.kms_key_name,
                role="roles/cloudkms.cryptoKeyEncrypterDecrypter",
                member=agent_member,
                opts=pulumi.ResourceOptions(parent=self),
            )
            topic_deps.append(self.kms_grant)

        self.topic = gcp.pubsub.Topic(
            names.topic(name),
            name=spec.topic.name,
            project=project,
            labels=topic_labels(spec.labels, spec.topic),
            message_retention_duration=spec.topic.message_retention_gcp,
            kms_key_name=spec.topic.kms_key_name,
            opts=pulumi.ResourceOptions(
                parent=self, protect=protect, depends_on=topic_deps, retain_on_delete=retain
            ),
        )

        dead_letter = spec.dead_letter
        self.dead_letter_topic = gcp.pubsub.Topic(
            names.dead_letter_topic(name),
            name=dead_letter.topic,
            project=project,
            labels=dead_letter_labels(spec.labels, dead_letter),
            kms_key_name=spec.topic.kms_key_name,
            opts=pulumi.ResourceOptions(
                parent=self, protect=protect, depends_on=topic_deps, retain_on_delete=retain
            ),
        )
        # A topic with no subscription drops what is published to it: this pull subscription is
        # what keeps dead letters, what the alert watches and what `eventsctl dlq` reads.
        self.dead_letter_subscription = gcp.pubsub.Subscription(
            names.dead_letter_subscription(name),
            name=dead_letter.subscription,
            project=project,
            topic=self.dead_letter_topic.id,
            ack_deadline_seconds=dead_letter.ack_deadline,
            message_retention_duration=dead_letter.message_retention_gcp,
            expiration_policy=gcp.pubsub.SubscriptionExpirationPolicyArgs(ttl=NEVER_EXPIRE),
            labels=dead_letter_labels(spec.labels, dead_letter),
            opts=pulumi.ResourceOptions(parent=self, protect=protect, retain_on_delete=retain),
        )
        self.dead_letter_publisher = gcp.pubsub.TopicIAMMember(
            f"{name}-dead-letter-topic-agent-publisher",
            project=project,
            topic=self.dead_letter_topic.id,
            role="roles/pubsub.publisher",
            member=agent_member,
            opts=pulumi.ResourceOptions(parent=self, replace_with=[self.dead_letter_topic]),
        )

        self.subscriptions: dict[str, gcp.pubsub.Subscription] = {}
        self.subscriber_grants: dict[str, gcp.pubsub.SubscriptionIAMMember] = {}
        for sub in spec.subscriptions:
            resource = self._subscription(sub, protect)
            self.subscriptions[sub.name] = resource
            # The agent acknowledges the message it forwards to the dead-letter topic, so it
            # must be a subscriber on the source subscription.
            self.subscriber_grants[sub.name] = gcp.pubsub.SubscriptionIAMMember(
                f"{name}-sub-{sub.name}-agent-subscriber",
                project=project,
                subscription=resource.id,
                role="roles/pubsub.subscriber",
                member=agent_member,
                opts=pulumi.ResourceOptions(parent=self, replace_with=[resource]),
            )

        self.dead_letter_subscription_id = pulumi.Output.all(
            self.dead_letter_subscription.id, self.dead_letter_publisher.id
        ).apply(lambda ids: ids[0])
        self.subscription_ids = pulumi.Output.all(
            {n: s.id for n, s in self.subscriptions.items()},
            [g.id for g in self.subscriber_grants.values()],
        ).apply(lambda both: both[0])

        self.register_outputs(
            {
                "topic": self.topic.id,
                "dead_letter_topic": self.dead_letter_topic.id,
                "dead_letter_subscription": self.dead_letter_subscription_id,
                "subscriptions": self.subscription_ids,
            }
        )

    def _subscription(self, sub: SubscriptionConfig, protect: bool) -> gcp.pubsub.Subscription:
        push_config = None
        if sub.push_endpoint:
            push_config = gcp.pubsub.SubscriptionPushConfigArgs(
                push_endpoint=sub.push_endpoint,
                oidc_token=(
                    gcp.pubsub.SubscriptionPushConfigOidcTokenArgs(
                        service_account_email=sub.push_service_account
                    )
                    if sub.push_service_account
                    else None
                ),
            )
        return gcp.pubsub.Subscription(
            names.subscription(sub.name, self._name),
            name=sub.name,
            project=self._spec.project,
            topic=self.topic.id,
            filter=sub.delivery_filter or None,  # replay_filter: false declares none
            ack_deadline_seconds=sub.ack_deadline,
            message_retention_duration=sub.message_retention_gcp,
            expiration_policy=gcp.pubsub.SubscriptionExpirationPolicyArgs(ttl=NEVER_EXPIRE),
            dead_letter_policy=gcp.pubsub.SubscriptionDeadLetterPolicyArgs(
                dead_letter_topic=self.dead_letter_topic.id,
                max_delivery_attempts=sub.max_delivery_attempts,
            ),
            retry_policy=gcp.pubsub.SubscriptionRetryPolicyArgs(
                minimum_backoff=sub.min_backoff_gcp,
                maximum_backoff=sub.max_backoff_gcp,
            ),
            enable_message_ordering=sub.enable_message_ordering,
            enable_exactly_once_delivery=sub.enable_exactly_once_delivery,
            push_config=push_config,
            labels=subscription_labels(self._spec.labels, sub),
            opts=pulumi.ResourceOptions(
                parent=self, protect=protect, retain_on_delete=sub.retained(self._spec.retain_data)
            ),
        )
