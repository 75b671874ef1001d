"""Pulumi components and the topology model behind the events-infra stacks.

Kept free of imports so that `eventsctl --help` and the topology model load without Pulumi.
"""
