"""Evidence read from an upload's own bytes (Content Credentials, metadata, watermarks): what a verdict cites."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# The marks an upload carries, and `known_content`: a bank entry it matched (the known-content stage).
EvidenceKind = Literal["c2pa", "xmp", "generator_metadata", "watermark", "known_content"]
Claim = Literal["ai_generated", "real"]

# IPTC Digital Source Type vocabulary (http://cv.iptc.org/newscodes/digitalsourcetype/): the values that
# declare generative AI, and the capture values a camera writes. `algorithmicMedia` (procedural, not
# trained) is neither.
IPTC_SOURCE_TYPES = "http://cv.iptc.org/newscodes/digitalsourcetype/"
AI_SOURCE_TYPES = frozenset({"trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia", "compositeSynthetic"})
CAPTURE_SOURCE_TYPES = frozenset({"digitalCapture", "computationalCapture"})


class EvidenceItem(BaseModel):
    """One mark found on the upload. `valid` says the mark is intact (a C2PA signature and hashes that check,
    a well-formed field); `trusted` says its signer chains to a configured trust anchor (C2PA only)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: EvidenceKind
    claim: Claim
    valid: bool
    trusted: bool = False
    source: str = Field(description="who or what made the claim: signer, generator, software, watermark scheme")
    detail: str = Field(description="what was read, for reviewers: source type, manifest label, parameters line")


def source_type_claim(value: str) -> Claim | None:
    """`ai_generated` for an AI source type, `real` for a capture, None otherwise (full IRI or bare term)."""
    term = value.strip().removeprefix(IPTC_SOURCE_TYPES).rstrip("/")
    if term in AI_SOURCE_TYPES:
        return "ai_generated"
    if term in CAPTURE_SOURCE_TYPES:
        return "real"
    return None
