"""A private-IP outbox is reachable only through what the stack says explicitly: the private
services access connection Cloud SQL's private IP needs (created, or the project's existing
one) and the subnet Cloud Run's Direct VPC egress uses for the relay and the migration job
(left out, Cloud Run takes the subnet named like the network, which may not exist)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from events_infra.components.offline import Run, run_program
from events_infra.stack_config.stack_files import topology_from_config
from events_infra.stack_config.topology import TopologyError

SUBNET = "projects/cotton-erp/regions/asia-south1/subnetworks/cotton-erp-vpc"
NETWORK = "projects/cotton-erp/global/networks/cotton-erp-vpc"


def engine(config: dict[str, Any]) -> dict[str, str]:
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}


def interfaces(resource: Any) -> list[dict[str, Any]]:
    template = resource.inputs["template"]
    template = template.get("template", template)  # a job's task template is one level down
    return template["vpcAccess"]["networkInterfaces"]


def test_the_relay_and_the_job_egress_through_the_named_subnet(prod: Run) -> None:
    [service] = prod.of_type("gcp:cloudrunv2/service:Service")
    [job] = prod.of_type("gcp:cloudrunv2/job:Job")
    for resource in (service, job):
        assert interfaces(resource) == [{"network": NETWORK, "subnetwork": SUBNET}]
    # prod uses the network's existing private services access: nothing declared for it
    assert prod.of_type("gcp:servicenetworking/connection:Connection") == []


def test_create_declares_the_range_and_connection_before_the_instance(
    prod_config: dict[str, Any],
) -> None:
    prod_config["events-infra:database"]["private_services_access"] = "create"
    run = run_program(engine(prod_config), stack="prod")
    [address] = run.of_type("gcp:compute/globalAddress:GlobalAddress")
    [connection] = run.of_type("gcp:servicenetworking/connection:Connection")
    [instance] = run.of_type("gcp:sql/databaseInstance:DatabaseInstance")
    assert (address.inputs["purpose"], address.inputs["addressType"]) == ("VPC_PEERING", "INTERNAL")
    assert address.inputs["prefixLength"] == 16 and address.inputs["network"] == NETWORK
    assert connection.inputs["service"] == "servicenetworking.googleapis.com"
    assert connection.inputs["reservedPeeringRanges"] == [address.inputs["name"]]
    assert connection.urn in instance.dependencies
    assert connection.retain_on_delete and address.retain_on_delete  # others use the peering
    apis = {s.inputs["service"] for s in run.of_type("gcp:projects/service:Service")}
    assert "compute.googleapis.com" in apis


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"subnetwork": None}, "private_network needs database.subnetwork"),
        ({"subnetwork": "projects/p/regions/europe-west1/subnetworks/s"},
         "database.subnetwork is in europe-west1, the database in asia-south1"),
        ({"private_services_access": None}, "needs private services access on"),
        ({"private_network": None, "private_services_access": None},
         "subnetwork and private_services_access apply to a private IP"),
        ({"existing": True, "private_services_access": "create", "tier": None},
         "an existing private-IP instance has its private services access already"),
    ],
    ids=["no-subnet", "other-region", "no-psa", "no-network", "existing-create"],
)  # fmt: skip
def test_an_unreachable_private_ip_is_refused_in_one_line(
    prod_config: dict[str, Any], change: dict[str, Any], message: str
) -> None:
    database = {**prod_config["events-infra:database"], **change}
    if change.get("existing"):
        database = {k: v for k, v in database.items() if k in (
            "existing", "region", "instance", "database", "private_network", "subnetwork",
            "private_services_access", "migration_principal")}  # fmt: skip
    config = {**prod_config, "events-infra:database": {k: v for k, v in database.items()
                                                        if v is not None}}  # fmt: skip
    with pytest.raises(TopologyError) as raised:
        topology_from_config(config, set())
    [line] = str(raised.value).splitlines()
    assert message in line
