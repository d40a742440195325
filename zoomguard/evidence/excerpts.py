"""Short, printable excerpts of attacker-written text: what reviewers see of a prompt or a tool name."""

from __future__ import annotations

import unicodedata


def excerpt(text: str, limit: int = 200) -> str:
    """At most `limit` characters, control and format characters (bidi overrides, zero-width) made spaces and
    whitespace collapsed, so a hostile prompt can neither flood a verdict nor reorder what a reviewer reads."""
    head = text[: limit * 2]
    cleaned = " ".join("".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in head).split())
    if len(cleaned) > limit or len(text) > len(head):
        return cleaned[: limit - 1].rstrip() + "…"
    return cleaned
