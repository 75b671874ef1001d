"""The stack model, Pulumi-free: what `stacks/Pulumi.<stack>.yaml` may say and what it means.

The CLI (`eventsctl`), the relay, the consumer library and the Pulumi components all read stacks
through this package: `topology.py` (the validated model and its cross-checks), `stack_files.py`
(loading a stack file or the Pulumi config), the per-section models (`*_config.py`),
`durations.py`, `limits.py` (every limit shared with local mode and the policy pack) and
`reference.py` (the generated key table in docs/stack-config.md). Nothing here imports Pulumi.
"""
