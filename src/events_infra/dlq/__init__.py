"""Dead-letter operations: scan, select, inspect/export, replay, purge, restore, doctor, the
undo journal and the audit log. Plain functions taking Pub/Sub clients as arguments and raising
`dlq.errors.DlqError` for what a person can fix, usable from a script as from `eventsctl dlq`
(which is a thin layer over `dlq.operations`). Imports neither Pulumi nor the CLI."""
