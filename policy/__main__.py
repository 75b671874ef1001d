"""The events-infra policy pack: `pulumi preview --policy-pack policy` enforces the audit's rules.

Each rule is a plain function in rules.py (unit-tested in tests/test_policy_rules.py); this file
only registers them with the policy runtime. It runs in its own virtualenv (requirements.txt):
pulumi-policy pins an older protobuf than the Google Cloud clients the project uses.
"""

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyPack,
    ResourceValidationPolicy,
    StackValidationPolicy,
)
from rules import RESOURCE_RULES, STACK_RULES

# Per-policy settings, given per stack with --policy-pack-config policy/config.<stack>.json
CONFIG_SCHEMAS = {
    "cloudsql-backups-and-protection": {
        "production": {"type": "boolean", "default": False},
        "minRetainedBackups": {"type": "integer", "minimum": 1, "maximum": 365},
        "minLogRetentionDays": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "dead-letter-retention": {
        "minRetentionSeconds": {"type": "number", "minimum": 600, "maximum": 604800},
    },
    "subscription-dead-letter-policy": {
        "defaultMaxDeliveryAttempts": {"type": "integer", "minimum": 5, "maximum": 100},
        "minDeliveryAttempts": {"type": "integer", "minimum": 5, "maximum": 100},
        "maxDeliveryAttempts": {"type": "integer", "minimum": 5, "maximum": 100},
    },
    "subscription-retry-policy": {
        "minBackoffSeconds": {"type": "number", "minimum": 0, "maximum": 600},
        "maxBackoffSeconds": {"type": "number", "minimum": 0, "maximum": 600},
    },
}


def _resource_policy(name, rule):
    def validate(args, report_violation):
        for message in rule(args.resource_type, args.props, args.get_config() or {}):
            report_violation(message)

    schema = CONFIG_SCHEMAS.get(name)
    return ResourceValidationPolicy(
        name=name,
        description=(rule.__doc__ or name).split("\n")[0],
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=PolicyConfigSchema(properties=schema) if schema else None,
    )


def _stack_policy(name, rule):
    def validate(args, report_violation):
        for message in rule([(r.resource_type, r.props) for r in args.resources]):
            report_violation(message)

    return StackValidationPolicy(
        name=name,
        description=(rule.__doc__ or name).split("\n")[0],
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
    )


PolicyPack(
    name="events-infra",
    policies=[_resource_policy(n, r) for n, r in RESOURCE_RULES.items()]
    + [_stack_policy(n, r) for n, r in STACK_RULES.items()],
)
