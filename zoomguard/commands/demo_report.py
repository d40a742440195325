"""What the demo shows, as text and HTML built from the output records: pure, no I/O."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

Records = Mapping[str, Sequence[Mapping[str, Any]]]


def report_text(outputs: Records) -> str:
    """The verdict table, the review requests and the dead letters (outputs: verdicts, review, dead letters)."""
    verdicts, reviews, dead = outputs.values()
    lines = [f"\nVERDICTS ({len(verdicts)})"]
    lines.append(
        f"  {'event_id':<16} {'decision':<13} {'by':<13} {'p_ai':>6} {'regions':>7} {'crops':>5} {'review':<10} cache"
    )
    reasons = {r["event_id"]: r["reason"] for r in reviews}
    for v in sorted(verdicts, key=lambda v: v["event_id"]):
        p_ai = "-" if v["p_ai"] is None else f"{v['p_ai']:.3f}"
        lines.append(
            f"  {v['event_id']:<16} {v['decision']:<13} {v.get('decision_source', 'model'):<13} {p_ai:>6} "
            f"{len(v['regions']):>7} {v['crops']:>5} "
            f"{reasons.get(v['event_id'], '-'):<10} {'hit' if v['cache_hit'] else '-'}"
        )
    lines.append(
        f"\nREVIEW REQUESTS ({len(reviews)}): " + ", ".join(f"{r['event_id']} ({r['reason']})" for r in reviews)
    )
    marked = [v for v in verdicts if v.get("evidence")]
    lines.append(f"\nEVIDENCE: MARKS IN THE UPLOADS, KNOWN CONTENT ({len(marked)})")
    for v in sorted(marked, key=lambda v: v["event_id"]):
        for item in v["evidence"]:
            lines.append(f"  {v['event_id']:<16} {item['kind']:<18} {item['claim']:<13} {item['source'][:40]}")
    lines.append(f"\nDEAD LETTERS ({len(dead)})")
    for d in dead:
        who = d["event_id"] or "(unreadable)"
        lines.append(f"  {who:<18} {d['stage']:<6} {d['error']['kind']:<16} {d['error']['message'][:70]}")
    return "\n".join(lines)


def gallery_html(drawn: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
    """One card per (image file name, verdict); every text from an event is escaped."""
    cards = []
    for name, v in drawn:
        findings = "".join(f"<li>{html.escape(r['finding'][:60])}</li>" for r in v["regions"])
        findings += "".join(
            f"<li><b>{html.escape(e['kind'])}</b>: {html.escape(e['source'][:60])} "
            f"({html.escape(e['detail'][:60])})</li>"
            for e in v.get("evidence", [])
        )
        p_ai = "n/a" if v["p_ai"] is None else f"{v['p_ai']:.3f}"
        cards.append(
            f'<figure><img src="{html.escape(name)}" width="320"><figcaption><b>{html.escape(v["event_id"])}</b>: '
            f"{html.escape(v['decision'])} by {html.escape(v.get('decision_source', 'model'))} (p_ai {p_ai})"
            f"<ul>{findings}</ul></figcaption></figure>"
        )
    return (
        "<!doctype html><meta charset=utf-8><title>zoomguard demo</title>"
        "<style>body{font-family:sans-serif}figure{display:inline-block;vertical-align:top;margin:8px}</style>"
        "<h1>zoomguard demo verdicts</h1><p>Tiny random-weight model: the verdicts exercise the pipeline "
        "and mean nothing.</p>" + "".join(cards)
    )
