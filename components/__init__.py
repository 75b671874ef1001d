"""The Pulumi components behind the events-infra stacks (EventBus, OutboxDatabase, OutboxRelay,
DlqAlerting, Access). The stack model they are built from lives in `stack_config` (Pulumi-free).
"""
