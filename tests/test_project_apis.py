"""The stack enables the Google APIs it uses, before anything that calls them, and never turns
one off: on a fresh project every call to a disabled API fails with 403 SERVICE_DISABLED."""

from __future__ import annotations

from events_infra.components.offline import Run
from events_infra.components.project_apis import SERVICE_TYPE
from events_infra.stack_config.apis import ALWAYS, required_apis
from events_infra.stack_config.stack_files import topology_from_config


def services(run: Run) -> dict[str, object]:
    return {r.inputs["service"]: r for r in run.of_type(SERVICE_TYPE)}


def test_prod_enables_what_its_resources_use_and_never_disables_it(prod: Run) -> None:
    apis = services(prod)
    assert set(apis) == {
        "pubsub.googleapis.com", "iam.googleapis.com", "cloudresourcemanager.googleapis.com",
        "monitoring.googleapis.com", "sqladmin.googleapis.com",
        "servicenetworking.googleapis.com",  # its outbox has only a private IP
        "run.googleapis.com", "artifactregistry.googleapis.com",  # relay and migration job
        "logging.googleapis.com",  # the consumer library's dead letters: a log-based metric
    }  # fmt: skip
    for service in apis.values():
        assert service.inputs["disableOnDestroy"] is False
        assert service.inputs["disableDependentServices"] is False
        assert service.retain_on_delete is True
        assert service.inputs["project"] == "cotton-erp"


def test_dev_has_no_private_services_api(dev: Run) -> None:
    assert "servicenetworking.googleapis.com" not in services(dev)  # a public-IP outbox
    assert "sqladmin.googleapis.com" in services(dev)


def test_every_other_resource_waits_for_every_api(prod: Run) -> None:
    apis = {r.urn for r in prod.of_type(SERVICE_TYPE)}
    others = [r for r in prod.resources if r.type != SERVICE_TYPE and not r.type.startswith(
        "events-infra:project_apis")]  # fmt: skip
    assert len(others) > 50
    late = [r.urn for r in others if not apis <= set(r.dependencies)]
    assert late == []


def test_a_pubsub_only_stack_needs_only_the_base_apis() -> None:
    topology = topology_from_config(
        {"gcp:project": "cotton-erp", "events-infra:subscriptions": [{"name": "events-sub"}]},
        set(),
    )
    assert required_apis(topology) == sorted(ALWAYS)
