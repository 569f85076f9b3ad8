"""Parsing server-sent events (the parts of the format the service sends)."""

from __future__ import annotations

import json
from typing import Any


def parse(text: str) -> list[dict[str, Any]]:
    """Events of a stream body: ``{"id", "event", "data"}``; comments as ``{"comment"}``."""
    out: list[dict[str, Any]] = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        event: dict[str, Any] = {}
        for line in block.split("\n"):
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "":
                event["comment"] = value
            elif field == "data":
                event["data"] = json.loads(value)
            else:
                event[field] = value
        out.append(event)
    return out


def named(events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in events if e.get("event") == name]
