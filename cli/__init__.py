"""`eventsctl`: the on-call and operations CLI of events-infra.

Each command group lives in its own module; commands are thin (parse, call an operation,
render) and import heavy client libraries inside the command, so `eventsctl --help` stays fast.
"""

__version__ = "0.1.0"
