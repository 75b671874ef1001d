"""`Access`: service accounts and least-privilege, non-authoritative grants for the relay, each
consumer and the DLQ operators.

Every Pub/Sub grant is a member binding on one topic or subscription (by `.id`, replaced with it).
Cloud SQL and Cloud Monitoring have no resource-level IAM; their few project-level grants are
either conditioned on the one outbox instance or read-only (monitoring.viewer), and the snapshot
permissions replay needs come from a custom role holding nothing else. No owner, editor or
pubsub.admin anywhere: tests fail if one appears.
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_gcp as gcp

from events_infra.components.args import AccessArgs
from events_infra.components.event_bus import EventBus
from events_infra.components.outbox_database import WRITER_ROLE as WRITER_DATABASE_ROLE
from events_infra.components.outbox_database import OutboxDatabase, iam_database_user
from events_infra.stack_config import pulumi_names as names
from events_infra.stack_config.access_config import is_account_id

RELAY_DATABASE_ROLE = "events_outbox_relay"
"""PostgreSQL role created by migration 0002: read and settle the outbox, nothing else."""

DLQ_SNAPSHOT_PERMISSIONS = [
    "pubsub.snapshots.create",
    "pubsub.snapshots.get",
    "pubsub.snapshots.list",
    "pubsub.snapshots.seek",
    "pubsub.snapshots.delete",
]
"""What `eventsctl dlq replay/purge` needs beyond the DLQ subscription to take and restore a
snapshot; Pub/Sub has no finer scope for snapshots that do not exist yet."""

READ_ONLY_PROJECT_ROLES = frozenset({"roles/monitoring.viewer"})
WRITE_ONLY_METRICS_ROLES = frozenset({"roles/monitoring.metricWriter"})
"""Project-wide by necessity (Monitoring has no finer scope), and can neither read nor change
anything but the caller's own metric points."""


class Access(pulumi.ComponentResource):
    """Identities and grants of one stack. Public fields: `relay`, `consumers` (subscription ->
    service account or None for an existing identity), `relay_database_user` (on the first
    outbox database) and `relay_database_users` (outbox name -> its login, for `outboxes`).

    One relay identity serves every outbox database: it logs in to each as
    events_outbox_relay, with connect rights conditioned on each instance."""

    def __init__(
        self,
        name: str,
        spec: AccessArgs,
        bus: EventBus,
        database: OutboxDatabase | None = None,
        outboxes: Mapping[str, OutboxDatabase] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(names.ACCESS_TYPE, name, None, opts)
        self._name = name
        self._project = spec.project
        config = spec.access

        # --- the outbox relay: publish to the events topic, use the outbox database ---------
        self.relay, relay_email = self._identity("relay", config.relay, "events outbox relay")
        self.relay_email = relay_email
        relay_member = relay_email.apply(lambda e: f"serviceAccount:{e}")
        self.relay_publisher = self._topic_member(
            "relay-publisher", bus.topic, "roles/pubsub.publisher", relay_member
        )
        # its backlog / oldest-age / publish metrics (outbox.relay_metrics); Monitoring has no
        # finer scope than the project, and metricWriter can only write, not read
        self.relay_metric_writer = self._project_member(
            "relay-metricwriter", "roles/monitoring.metricWriter", relay_member
        )
        self._login_grants: dict[str, list[gcp.projects.IAMMember]] = {}
        self.relay_database_user: gcp.sql.User | None = None
        if database is not None:
            self.relay_database_user = self._database_login(
                "relay", relay_email, RELAY_DATABASE_ROLE, database
            )

        self.relay_database_users: dict[str, gcp.sql.User] = {}
        for outbox, outbox_db in (outboxes or {}).items():
            self.relay_database_users[outbox] = self._database_login(
                f"relay-{outbox}", relay_email, RELAY_DATABASE_ROLE, outbox_db
            )

        # --- services writing events: INSERT into the outbox, nothing else ---------------------
        self.writer_database_users: dict[str, gcp.sql.User] = {}
        """`<account>` on the first outbox database, `<outbox>/<account>` on the others."""
        writers: dict[str, pulumi.Output[str]] = {}  # account -> email, each identity made once

        def writer(account: str) -> tuple[str, pulumi.Output[str]]:
            key = account.split("@", 1)[0]
            if account not in writers:
                writers[account] = self._identity(
                    f"writer-{key}", account, "writes events to the outbox"
                )[1]
            return key, writers[account]

        if database is not None:
            for account in config.writers:
                key, email = writer(account)
                self.writer_database_users[key] = self._database_login(
                    f"writer-{key}", email, WRITER_DATABASE_ROLE, database
                )
        for outbox, outbox_db in (outboxes or {}).items():
            for account in spec.outbox_writers.get(outbox, ()):
                key, email = writer(account)
                self.writer_database_users[f"{outbox}/{key}"] = self._database_login(
                    f"writer-{outbox}-{key}", email, WRITER_DATABASE_ROLE, outbox_db
                )

        # --- consumers: each subscribes to its own subscription only ------------------------
        self.consumers: dict[str, gcp.serviceaccount.Account | None] = {}
        for sub_name, account in spec.consumer_accounts.items():
            if account is None:
                continue
            resource, email = self._identity(
                f"consumer-{sub_name}", account, f"consumer of {sub_name}"
            )
            self.consumers[sub_name] = resource
            member = email.apply(lambda e: f"serviceAccount:{e}")
            subscription = bus.subscriptions[sub_name]
            self._subscription_member(
                f"consumer-{sub_name}-subscriber", subscription, "roles/pubsub.subscriber", member
            )
            # The consumer library (consumer.runner) reads its subscription's dead-letter
            # policy and ordering at start: subscriptions.get is in viewer, not in subscriber
            # (which holds only consume and attachSubscription). No consumer may publish to the
            # dead-letter topic: poison is nacked and Pub/Sub dead-letters it, so every letter
            # there is Pub/Sub's own and replay can trust its source subscription.
            self._subscription_member(
                f"consumer-{sub_name}-viewer", subscription, "roles/pubsub.viewer", member
            )

        # --- DLQ operators: drain and replay dead letters, read monitoring ------------------
        self.dlq_operator_role: gcp.projects.IAMCustomRole | None = None
        if config.dlq_operators:
            self.dlq_operator_role = gcp.projects.IAMCustomRole(
                f"{name}-dlq-operator-role",
                project=self._project,
                role_id="eventsDlqOperator",
                title="events-infra DLQ operator (snapshots for safe replay)",
                description="Take, seek and delete Pub/Sub snapshots for eventsctl dlq",
                permissions=DLQ_SNAPSHOT_PERMISSIONS,
                opts=pulumi.ResourceOptions(parent=self),
            )
        # The operators hold no standing grant: they impersonate the replayer, which holds
        # what `eventsctl dlq` needs (and the only publish right on the DLQ topic besides
        # Pub/Sub's service agent, for `dlq restore`).
        self.replayer: gcp.serviceaccount.Account | None = None
        if config.dlq_operators:
            self.replayer = gcp.serviceaccount.Account(
                f"{name}-replayer",
                project=self._project,
                account_id=config.replayer,
                display_name="events-infra DLQ replayer (on-call impersonates it)",
                opts=pulumi.ResourceOptions(parent=self),
            )
            self._replayer_grants(bus, self.replayer.email.apply(lambda e: f"serviceAccount:{e}"))
        for member in config.dlq_operators:
            assert self.replayer is not None
            gcp.serviceaccount.IAMMember(
                f"{name}-operator-{_member_key(member)}-impersonates-replayer",
                service_account_id=self.replayer.name,
                role="roles/iam.serviceAccountTokenCreator",
                member=member,
                opts=pulumi.ResourceOptions(parent=self),
            )

        self.register_outputs({"relay": relay_email})

    def _replayer_grants(self, bus: EventBus, member: pulumi.Output[str]) -> None:
        """What `eventsctl dlq` does, granted to the replayer account alone."""
        key = "replayer"
        for role in ("roles/pubsub.subscriber", "roles/pubsub.viewer"):
            self._subscription_member(
                f"{key}-dlq-{role.rsplit('.', 1)[-1]}", bus.dead_letter_subscription, role, member
            )
        self._topic_member(f"{key}-publisher", bus.topic, "roles/pubsub.publisher", member)
        # `dlq doctor` reads the events topic and lists its subscriptions (undeclared ones too)
        self._topic_member(f"{key}-viewer", bus.topic, "roles/pubsub.viewer", member)
        # `dlq restore --journal` publishes acknowledged letters back to the DLQ topic;
        # `dlq doctor` reads the DLQ topic and every consumer subscription
        self._topic_member(
            f"{key}-dlq-publisher", bus.dead_letter_topic, "roles/pubsub.publisher", member
        )
        self._topic_member(
            f"{key}-dlq-viewer", bus.dead_letter_topic, "roles/pubsub.viewer", member
        )
        for sub_name, subscription in bus.subscriptions.items():
            self._subscription_member(
                f"{key}-{sub_name}-viewer", subscription, "roles/pubsub.viewer", member
            )
        self._project_member(f"{key}-monitoring-viewer", "roles/monitoring.viewer", member)
        assert self.dlq_operator_role is not None
        self._project_member(f"{key}-snapshots", self.dlq_operator_role.name, member)

    def _database_login(
        self, key: str, email: pulumi.Output[str], role: str, database: OutboxDatabase
    ) -> gcp.sql.User:
        """Cloud SQL IAM login for a service account, as PostgreSQL role `role`: connect rights
        conditioned on the outbox instance, and an IAM database user created after the schema
        (whose migration 0002 creates the role)."""
        member = email.apply(lambda e: f"serviceAccount:{e}")
        self._login_grants[key] = database.connect_grants(f"{self._name}-{key}", member, self)
        depends = [database.schema] if database.schema is not None else []
        return gcp.sql.User(
            f"{self._name}-{key}-database-user",
            project=self._project,
            instance=database.instance_name,
            name=email.apply(lambda e: iam_database_user(e)[0]),
            type="CLOUD_IAM_SERVICE_ACCOUNT",
            database_roles=[role],
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends),
        )

    def relay_dependencies(self, outbox: str | None = None) -> list[pulumi.Resource]:
        """What the relay of the first outbox database (or of `outbox`) needs before its first
        revision starts: its publisher and metric-writer grants, its database login and the
        connect grants conditioned on that instance. Without them the first revision crash-loops
        on permission errors (IAM changes also take minutes to propagate; the relay retries)."""
        login = self.relay_database_user if outbox is None else self.relay_database_users[outbox]
        key = "relay" if outbox is None else f"relay-{outbox}"
        ready: list[pulumi.Resource] = [self.relay_publisher, self.relay_metric_writer]
        if login is not None:
            ready += [login, *self._login_grants[key]]
        return ready

    def _identity(
        self, suffix: str, account: str, purpose: str
    ) -> tuple[gcp.serviceaccount.Account | None, pulumi.Output[str]]:
        """Create the service account for an account id; use an existing one by email."""
        if not is_account_id(account):
            return None, pulumi.Output.from_input(account)
        resource = gcp.serviceaccount.Account(
            f"{self._name}-{suffix}",
            project=self._project,
            account_id=account,
            display_name=f"events-infra {purpose}",
            opts=pulumi.ResourceOptions(parent=self),
        )
        return resource, resource.email

    def _project_member(
        self, suffix: str, role: pulumi.Input[str], member: pulumi.Input[str]
    ) -> gcp.projects.IAMMember:
        """A project-level grant (Monitoring and custom roles have no finer scope)."""
        return gcp.projects.IAMMember(
            f"{self._name}-{suffix}",
            project=self._project,
            role=role,
            member=member,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _topic_member(
        self, suffix: str, topic: gcp.pubsub.Topic, role: str, member: pulumi.Input[str]
    ) -> gcp.pubsub.TopicIAMMember:
        return gcp.pubsub.TopicIAMMember(
            f"{self._name}-{suffix}",
            project=self._project,
            topic=topic.id,
            role=role,
            member=member,
            opts=pulumi.ResourceOptions(parent=self, replace_with=[topic]),
        )

    def _subscription_member(
        self,
        suffix: str,
        subscription: gcp.pubsub.Subscription,
        role: str,
        member: pulumi.Input[str],
    ) -> gcp.pubsub.SubscriptionIAMMember:
        return gcp.pubsub.SubscriptionIAMMember(
            f"{self._name}-{suffix}",
            project=self._project,
            subscription=subscription.id,
            role=role,
            member=member,
            opts=pulumi.ResourceOptions(parent=self, replace_with=[subscription]),
        )


def _member_key(member: str) -> str:
    """`group:oncall@cotton-erp.com` -> `group-oncall-cotton-erp-com`: a stable resource name."""
    return "".join(c if c.isalnum() else "-" for c in member.lower()).strip("-")
