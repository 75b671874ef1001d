"""Adopting a running estate: what the stack declares against what already exists in GCP.

`adopt_plan` reads the live Pub/Sub resources and the outbox's Cloud SQL instances and
databases (read-only: `plan`, `cloud_sql`) and classes every difference (`model`);
`import_file` writes the `pulumi import --file` document that brings the existing ones into the
stack under the program's own URNs. The runbook is docs/deploying.md, "Adopting a running estate".
"""

from events_infra.adopt.model import AdoptError
from events_infra.adopt.plan import AdoptPlan, adopt_plan, import_file

__all__ = ["AdoptError", "AdoptPlan", "adopt_plan", "import_file"]
