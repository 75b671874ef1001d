"""Overrides for one pull request: lines in its description that name a URN and a reason.

A repository-wide allow list outlives the change it was meant for and applies to every stack.
An override written in the pull request's own body is seen by its reviewers, applies to that
pull request's previews (and to the deploy of its merge commit) and to nothing else, and must
say why; the guard's comment records each one it used.

    guard-allow: urn:pulumi:prod::events-infra::...::events-sub-old  retired after the migrate
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LINE = re.compile(r"^\s*(?:[-*]\s+)?guard-allow:\s*(?P<urn>\S+)(?:\s+(?P<reason>.*\S))?\s*$")
_URN = re.compile(r"^urn:pulumi:[A-Za-z0-9_.:$/@=+-]+$")
"""A URN's characters: nothing that could close a code span or an HTML comment."""
PULL_REQUEST = "pull request"
REASON_CHARS = 200


@dataclass(frozen=True)
class Override:
    urn: str
    reason: str
    source: str
    """Where it was given: "pull request" or "--allow"."""


@dataclass
class Overrides:
    granted: dict[str, Override]
    refused: list[str]
    """Lines that looked like an override but cannot be one (no URN, no reason), as messages."""

    def get(self, urn: str) -> Override | None:
        return self.granted.get(urn)


def _plain(reason: str) -> str:
    """The reason as one safe line: it is shown in the comment and read back from it."""
    for bad in ("`", "<", ">", "--"):
        reason = reason.replace(bad, " ")
    return " ".join(reason.split()).strip(" -—–:")[:REASON_CHARS]


def from_body(body: str, command_line: list[str] | None = None) -> Overrides:
    """The overrides a pull request's body grants (plus `--allow URN` ones, for local use)."""
    granted: dict[str, Override] = {}
    refused: list[str] = []
    for line in body.splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        urn, reason = match["urn"], _plain(match["reason"] or "")
        if not _URN.match(urn):
            refused.append(f"guard-allow needs a full URN (urn:pulumi:...), got {urn[:80]!r}")
        elif not reason:
            refused.append(f"guard-allow for {urn} gives no reason: add one after the URN")
        else:
            granted[urn] = Override(urn, reason, PULL_REQUEST)
    for urn in command_line or []:
        granted.setdefault(urn, Override(urn, "allowed with --allow", "--allow"))
    return Overrides(granted, refused)
