"""What the marks found on an upload decide: pure, so the rule is one readable table.

A valid AI claim (a C2PA manifest that validates, however it is signed; IPTC XMP; generator metadata; a
watermark above its threshold) is conclusive. An invalid manifest decides nothing, and a camera's claim
never decides `real`: a forger can strip marks, so their absence or a capture claim is left to the model.
"""

from __future__ import annotations

from collections.abc import Sequence

from zoomguard.schemas.evidence import EvidenceItem

# Strongest first: the item an explanation names when several agree.
_STRENGTH = {"c2pa": 0, "watermark": 1, "xmp": 2, "generator_metadata": 3}
_KIND_TEXT = {
    "c2pa": "Content Credentials (C2PA)",
    "xmp": "IPTC metadata",
    "generator_metadata": "generator metadata",
    "watermark": "an invisible watermark",
}


def conclusive(items: Sequence[EvidenceItem]) -> list[EvidenceItem]:
    """The items that decide `ai_generated` on their own, strongest (then trusted) first; empty if none."""
    deciding = [item for item in items if item.kind in _STRENGTH and item.claim == "ai_generated" and item.valid]
    return sorted(deciding, key=lambda item: (_STRENGTH[item.kind], not item.trusted))


def explanation(items: Sequence[EvidenceItem]) -> str:
    """A sentence naming the evidence, for the verdict and for reviewers."""
    deciding = conclusive(items)
    if not deciding:
        return ""
    parts = []
    for item in deciding:
        trust = " (trusted signer)" if item.kind == "c2pa" and item.trusted else ""
        parts.append(f"{_KIND_TEXT[item.kind]} from {item.source}{trust}: {item.detail}")
    return "The upload declares itself AI-generated. " + "; ".join(parts) + "."


def trusted_capture(items: Sequence[EvidenceItem]) -> EvidenceItem | None:
    """The trusted camera's claim that may lower the prior: a valid, trusted C2PA capture claim, and no AI claim
    at all (valid or not, ingredients included), since one AI item means a capture was not the whole story."""
    if any(item.claim == "ai_generated" and item.kind in _STRENGTH for item in items):
        return None
    return next(
        (item for item in items if item.kind == "c2pa" and item.claim == "real" and item.valid and item.trusted), None
    )
