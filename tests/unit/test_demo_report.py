"""The demo's printed report and gallery page, from output records alone."""

from __future__ import annotations

from typing import Any

from zoomguard.commands.demo_report import gallery_html, report_text


def _verdict(event_id: str, decision: str, p_ai: float | None, finding: str = "edge") -> dict[str, Any]:
    regions = [{"finding": finding}]
    return {
        "event_id": event_id,
        "decision": decision,
        "p_ai": p_ai,
        "regions": regions,
        "crops": 1,
        "cache_hit": False,
    }


def test_report_lists_every_output_in_order() -> None:
    outputs = {
        "verdicts": [_verdict("b", "real", 0.1), _verdict("a", "uncertain", None)],
        "review": [{"event_id": "a", "reason": "uncertain"}],
        "dlq": [{"event_id": None, "stage": "parse", "error": {"kind": "bad_event", "message": "not json"}}],
    }
    text = report_text(outputs)
    assert text.index("  a ") < text.index("  b ")
    assert "VERDICTS (2)" in text and "REVIEW REQUESTS (1): a (uncertain)" in text
    assert "(unreadable)" in text and "bad_event" in text
    row_a = next(line for line in text.splitlines() if line.startswith("  a "))
    assert " - " in row_a and "uncertain" in row_a.split()[-2]


def test_gallery_escapes_what_events_carry() -> None:
    page = gallery_html([("x.png", _verdict("<script>id</script>", "ai_generated", 0.9, "<img onerror=1>"))])
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<img onerror" not in page
    assert 'src="x.png"' in page and "p_ai 0.900" in page
