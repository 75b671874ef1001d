"""`python -m events_infra.cli`: the same as `eventsctl`."""

from events_infra.cli import main

main()
