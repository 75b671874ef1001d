"""`OutboxRelay`: the outbox relay running in production, on Cloud Run.

One always-on Cloud Run service (CPU allocated outside requests, `min_instances` ≥ 1: the relay is
a loop, not a request handler) with two containers:

- `relay`: the project's image by digest, `eventsctl outbox relay` (the image's CMD) publishing
  to the events topic through the locational endpoint, serving /healthz for the liveness probe;
  SIGTERM finishes the batch in flight (Cloud Run sends it before stopping an instance).
- `cloud-sql-proxy`: the Cloud SQL Auth Proxy sidecar, logging in with the service account's IAM
  identity (`--auto-iam-authn`, the relay's IAM database user maps to `events_outbox_relay`) over
  TLS, on private IP when the instance has no public one. The relay waits for it (depends_on +
  startup probe) and talks to it on 127.0.0.1 without a password.

It runs as the relay's own service account from `Access` (publisher on the events topic only,
Cloud SQL client/instance user conditioned on the outbox instance). No one may invoke it
(internal ingress, no invoker grant): nothing calls the relay.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp

from events_infra.outbox.relay_process import RelayEnvironment

HEALTH_PORT = 8080
PROXY_PORT = 5432
PROXY_HEALTH_PORT = 9801
SHUTDOWN_PUBLISH_TIMEOUT_S = 7
"""Publish deadline in the container: Cloud Run sends SIGTERM and kills 10 s later, so the
batch in flight (publish <= 7 s, then its settle) and the final log line fit; a batch cut off
anyway is published again after its lease (duplicates, deduped by event_id; never a loss)."""
SIDECAR_SIGTERM_DELAY_S = 9


@dataclass
class OutboxRelayArgs:
    """What the relay needs, as inputs (awsx-style): not the whole stack model."""

    project: str
    region: str
    image: str
    """The relay image by digest (`REPO@sha256:...`)."""
    service_account_email: pulumi.Input[str]
    topic_id: pulumi.Input[str]
    """projects/P/topics/T"""
    pubsub_endpoint: str
    instance_connection_name: pulumi.Input[str]
    database: pulumi.Input[str]
    database_user: pulumi.Input[str]
    """The IAM database user (the service account's email without .gserviceaccount.com)."""
    private_network: str | None = None
    subnetwork: str | None = None
    """The subnet Direct VPC egress uses (required by the stack model with a private network)."""
    min_instances: int = 1
    max_instances: int = 2
    cpu: str = "1"
    memory: str = "512Mi"
    claim_mib: int = 32
    """The relay's claim budget; `memory` is validated against it by the stack model."""
    proxy_image: str = ""
    production: bool = False
    labels: dict[str, str] = field(default_factory=dict)


class OutboxRelay(pulumi.ComponentResource):
    """The relay's Cloud Run service. Public field: `service`."""

    def __init__(
        self, name: str, args: OutboxRelayArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("events-infra:outbox_relay:OutboxRelay", name, None, opts)
        database_url = pulumi.Output.all(args.database, args.database_user).apply(
            lambda v: f"host=127.0.0.1 port={PROXY_PORT} dbname={v[0]} user={v[1]} sslmode=disable"
        )
        env = [
            gcp.cloudrunv2.ServiceTemplateContainerEnvArgs(name=k, value=v)
            for k, v in (
                (RelayEnvironment.DATABASE_URL, database_url),
                (RelayEnvironment.TOPIC_PATH, args.topic_id),
                (RelayEnvironment.PUBSUB_ENDPOINT, args.pubsub_endpoint),
                (RelayEnvironment.HEALTH_PORT, str(HEALTH_PORT)),
                (RelayEnvironment.METRICS_PROJECT, args.project),
                (RelayEnvironment.METRICS_LOCATION, args.region),
                (RelayEnvironment.METRICS_JOB, name),
                (RelayEnvironment.PUBLISH_TIMEOUT, str(SHUTDOWN_PUBLISH_TIMEOUT_S)),
                (RelayEnvironment.CLAIM_MIB, str(args.claim_mib)),
            )
        ]
        relay = gcp.cloudrunv2.ServiceTemplateContainerArgs(
            name="relay",
            image=args.image,
            args=["outbox", "relay"],
            envs=env,
            ports=gcp.cloudrunv2.ServiceTemplateContainerPortsArgs(container_port=HEALTH_PORT),
            resources=gcp.cloudrunv2.ServiceTemplateContainerResourcesArgs(
                limits={"cpu": args.cpu, "memory": args.memory},
                cpu_idle=False,  # always-on CPU: the loop runs between (absent) requests
                startup_cpu_boost=True,
            ),
            depends_ons=["cloud-sql-proxy"],
            startup_probe=gcp.cloudrunv2.ServiceTemplateContainerStartupProbeArgs(
                tcp_socket=gcp.cloudrunv2.ServiceTemplateContainerStartupProbeTcpSocketArgs(
                    port=HEALTH_PORT
                ),
                period_seconds=5,
                failure_threshold=12,
            ),
            liveness_probe=gcp.cloudrunv2.ServiceTemplateContainerLivenessProbeArgs(
                http_get=gcp.cloudrunv2.ServiceTemplateContainerLivenessProbeHttpGetArgs(
                    path="/healthz", port=HEALTH_PORT
                ),
                period_seconds=30,
                failure_threshold=3,
            ),
        )
        proxy_args = [
            "--auto-iam-authn",
            "--structured-logs",
            f"--port={PROXY_PORT}",
            "--health-check",
            f"--http-port={PROXY_HEALTH_PORT}",
            "--http-address=0.0.0.0",
            # all containers get SIGTERM at once: keep the relay's connections open while its
            # last batch settles, inside Cloud Run's 10 s
            f"--max-sigterm-delay={SIDECAR_SIGTERM_DELAY_S}s",
        ]
        if args.private_network:
            proxy_args.append("--private-ip")
        proxy = gcp.cloudrunv2.ServiceTemplateContainerArgs(
            name="cloud-sql-proxy",
            image=args.proxy_image,
            args=pulumi.Output.from_input(args.instance_connection_name).apply(
                lambda conn: [*proxy_args, conn]
            ),
            resources=gcp.cloudrunv2.ServiceTemplateContainerResourcesArgs(
                limits={"cpu": "1", "memory": "256Mi"}, cpu_idle=False
            ),
            startup_probe=gcp.cloudrunv2.ServiceTemplateContainerStartupProbeArgs(
                http_get=gcp.cloudrunv2.ServiceTemplateContainerStartupProbeHttpGetArgs(
                    path="/startup", port=PROXY_HEALTH_PORT
                ),
                period_seconds=2,
                failure_threshold=30,
            ),
        )
        vpc_access = None
        if args.private_network:
            vpc_access = gcp.cloudrunv2.ServiceTemplateVpcAccessArgs(
                network_interfaces=[
                    gcp.cloudrunv2.ServiceTemplateVpcAccessNetworkInterfaceArgs(
                        network=args.private_network, subnetwork=args.subnetwork
                    )
                ],
                egress="PRIVATE_RANGES_ONLY",
            )
        self.service = gcp.cloudrunv2.Service(
            f"{name}-service",
            name=f"{name}",
            project=args.project,
            location=args.region,
            ingress="INGRESS_TRAFFIC_INTERNAL_ONLY",
            deletion_protection=args.production,
            labels=args.labels,
            template=gcp.cloudrunv2.ServiceTemplateArgs(
                service_account=args.service_account_email,
                scaling=gcp.cloudrunv2.ServiceTemplateScalingArgs(
                    min_instance_count=args.min_instances,
                    max_instance_count=args.max_instances,
                ),
                # a batch in flight finishes within the publish deadlines; give it room
                timeout="300s",
                containers=[relay, proxy],
                vpc_access=vpc_access,
            ),
            # the component's dependencies (grants, database login) held for the service itself:
            # a child does not inherit its parent's depends_on
            opts=pulumi.ResourceOptions(parent=self, depends_on=opts.depends_on if opts else None),
        )
        self.register_outputs({"service": self.service.name})
