"""`ProjectApis`: the Google APIs the stack uses, enabled by the stack, ahead of everything else.

Each is a `gcp.projects.Service` with `disable_on_destroy=False`: removing the stack (or one of
its parts) never turns an API off under other workloads of the project. `wait_for_apis` makes
every resource declared after it depend on all of them (a stack transformation: a child does
not inherit its component's depends_on, so the dependency is added to each resource itself).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pulumi
import pulumi_gcp as gcp

SERVICE_TYPE = "gcp:projects/service:Service"


class ProjectApis(pulumi.ComponentResource):
    """Public field: `services` (API name -> its Service resource)."""

    def __init__(
        self,
        name: str,
        project: str,
        apis: Sequence[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("events-infra:project_apis:ProjectApis", name, None, opts)
        self.services = {
            api: gcp.projects.Service(
                f"{name}-{api.split('.', 1)[0]}",
                project=project,
                service=api,
                disable_on_destroy=False,
                disable_dependent_services=False,
                opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
            )
            for api in apis
        }
        self.register_outputs({"apis": list(apis)})


def wait_for_apis(
    apis: ProjectApis,
) -> Callable[[pulumi.ResourceTransformationArgs], pulumi.ResourceTransformationResult | None]:
    """A stack transformation adding the API services to every later resource's depends_on."""
    services = list(apis.services.values())

    def transform(
        args: pulumi.ResourceTransformationArgs,
    ) -> pulumi.ResourceTransformationResult | None:
        if args.type_ == SERVICE_TYPE or args.resource is apis:
            return None
        opts = pulumi.ResourceOptions.merge(args.opts, pulumi.ResourceOptions(depends_on=services))
        return pulumi.ResourceTransformationResult(args.props, opts)

    return transform
