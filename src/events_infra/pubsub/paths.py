"""Pub/Sub and Cloud Monitoring resource names, spelled once.

The API takes full resource names (`projects/P/topics/T`, `projects/P/subscriptions/S`,
`projects/P/snapshots/N`; Monitoring's `projects/P`); the stack model holds short names. Every
place that turns one into the other goes through these functions.
"""

from __future__ import annotations

TOPIC_PATH = r"projects/[^/]+/topics/[^/]+"
"""A full topic name, as a regular expression (for `re.fullmatch`)."""


def project_path(project: str) -> str:
    return f"projects/{project}"


def topic_path(project: str, topic: str) -> str:
    return f"{project_path(project)}/topics/{topic}"


def subscription_path(project: str, subscription: str) -> str:
    return f"{project_path(project)}/subscriptions/{subscription}"


def snapshot_path(project: str, snapshot: str) -> str:
    return f"{project_path(project)}/snapshots/{snapshot}"
