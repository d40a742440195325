"""What evidence decides, as a table: only valid AI claims, strongest first, named in the explanation."""

from __future__ import annotations

import pytest

from zoomguard.evidence.decide import conclusive, explanation
from zoomguard.schemas.evidence import EvidenceItem, source_type_claim


def item(kind: str, claim: str = "ai_generated", valid: bool = True, trusted: bool = False) -> EvidenceItem:
    return EvidenceItem.model_validate(
        {"kind": kind, "claim": claim, "valid": valid, "trusted": trusted, "source": f"{kind}-src", "detail": "d"}
    )


@pytest.mark.parametrize(
    ("items", "deciding"),
    [
        ([], []),
        ([item("c2pa", valid=False)], []),  # hash mismatch or bad signature: reported, decides nothing
        ([item("c2pa", claim="real", trusted=True)], []),  # a camera never decides real
        ([item("xmp")], ["xmp"]),
        ([item("generator_metadata"), item("c2pa")], ["c2pa", "generator_metadata"]),
        ([item("xmp"), item("watermark"), item("c2pa", valid=False)], ["watermark", "xmp"]),
    ],
)
def test_what_decides(items: list[EvidenceItem], deciding: list[str]) -> None:
    assert [i.kind for i in conclusive(items)] == deciding


def test_trusted_signers_come_first_and_are_named() -> None:
    untrusted, trusted = item("c2pa"), item("c2pa", trusted=True)
    assert conclusive([untrusted, trusted]) == [trusted, untrusted]
    text = explanation([item("xmp"), trusted])
    assert text.index("Content Credentials (C2PA) from c2pa-src (trusted signer)") < text.index(
        "IPTC metadata from xmp-src"
    )
    assert explanation([item("c2pa", valid=False)]) == ""


@pytest.mark.parametrize(
    ("value", "claim"),
    [
        ("http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia", "ai_generated"),
        ("compositeWithTrainedAlgorithmicMedia", "ai_generated"),
        ("http://cv.iptc.org/newscodes/digitalsourcetype/compositeSynthetic/", "ai_generated"),
        ("http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture", "real"),
        ("computationalCapture", "real"),
        ("http://cv.iptc.org/newscodes/digitalsourcetype/algorithmicMedia", None),  # procedural, not trained AI
        ("https://example.com/trainedAlgorithmicMedia", None),
        ("", None),
    ],
)
def test_source_types(value: str, claim: str | None) -> None:
    assert source_type_claim(value) == claim
