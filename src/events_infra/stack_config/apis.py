"""The Google APIs a stack's resources need enabled in its project.

A fresh project has few APIs on, and every call to a disabled one fails with 403
SERVICE_DISABLED ("... API has not been used in project ... or it is disabled"), so the stack
enables what it uses (`components.project_apis`), in front of everything else. The Service Usage
API itself must already be on (it is what enables the others): the deploy checklist says so.
"""

from __future__ import annotations

from events_infra.stack_config.topology import StackConfig

ALWAYS = (
    "pubsub.googleapis.com",  # topics, subscriptions, the service agent
    "iam.googleapis.com",  # service accounts, the DLQ operators' custom role
    "cloudresourcemanager.googleapis.com",  # project-level IAM members
    "monitoring.googleapis.com",  # alert policies, channels, dashboard, metric descriptors
)


def required_apis(topology: StackConfig) -> list[str]:
    """Sorted: the APIs of the resources this stack declares."""
    apis = set(ALWAYS)
    databases = [topology.database] if topology.database is not None else []
    databases += [o.database for o in topology.outboxes]
    if databases:
        apis.add("sqladmin.googleapis.com")
    if any(d.private_ip_only for d in databases):
        apis.add("servicenetworking.googleapis.com")  # private services access
    if any(d.private_services_access == "create" for d in databases):
        apis.add("compute.googleapis.com")  # its allocated range
    if topology.alerting.dead_letter_rate is not None:  # the library's dead letters: a log metric
        apis.add("logging.googleapis.com")
    if topology.relay is not None:  # the relay service and the migration job run on Cloud Run
        apis |= {"run.googleapis.com", "artifactregistry.googleapis.com"}
    return sorted(apis)
