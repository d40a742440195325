"""The cascade with a scripted engine and a fixed evidence reader: who decides, and whether the model runs."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from zoomguard.detector.engines.base import GenerationRequest
from zoomguard.detector.engines.scripted import ScriptedEngine
from zoomguard.detector.families import FAMILIES
from zoomguard.detector.settings import DetectorSettings
from zoomguard.detector.zoomin import ZoomInDetector
from zoomguard.errors import ImageTooLargeError
from zoomguard.evidence.settings import EvidenceSettings
from zoomguard.media.settings import ImageLimits
from zoomguard.samples import encode, make_image
from zoomguard.schemas.detection import Detection, ModelInfo
from zoomguard.schemas.evidence import EvidenceItem
from zoomguard.worker.cascade import Cascade

IMAGE = encode(make_image(3, (200, 150)), "PNG")
SIGNED_AI = EvidenceItem(
    kind="c2pa", claim="ai_generated", valid=True, source="OpenAI (test signer)", detail="trainedAlgorithmicMedia"
)
TAMPERED = SIGNED_AI.model_copy(update={"valid": False})
CAMERA = EvidenceItem(kind="c2pa", claim="real", valid=True, trusted=True, source="Leica", detail="digitalCapture")
INFOTEXT = EvidenceItem(
    kind="generator_metadata", claim="ai_generated", valid=True, source="Automatic1111", detail="Steps: 20, Seed: 1"
)


def _real(request: GenerationRequest) -> tuple[str, float]:
    if len(request.turns) == 1:
        return (
            '{"explanation": "a photo", "regions": [{"box": [10, 10, 60, 60], "finding": "sharp edge"}], "verdict": "real"}',
            0.05,
        )
    return '{"explanation": "looks like a photo", "verdict": "real"}', 0.05


def _run(items: list[EvidenceItem], settings: EvidenceSettings | None = None, data: bytes = IMAGE,
         limits: ImageLimits | None = None) -> tuple[Detection, ScriptedEngine, list[bytes]]:  # fmt: skip
    engine = ScriptedEngine(_real)
    detector = ZoomInDetector(
        engine, DetectorSettings(), FAMILIES["qwen2_5_vl"], ModelInfo(name="m", version="v1", family="qwen2_5_vl")
    )
    seen: list[bytes] = []

    def read(raw: bytes) -> list[EvidenceItem]:
        seen.append(raw)
        return items

    cascade = Cascade(detector, read, settings or EvidenceSettings(), limits or ImageLimits())
    return asyncio.run(cascade.detect_bytes(data, request_id="r")), engine, seen


def test_conclusive_evidence_decides_without_the_model() -> None:
    detection, engine, seen = _run([SIGNED_AI])
    assert seen == [IMAGE] and engine.requests == []
    assert detection.decision == "ai_generated" and detection.decision_source == "evidence"
    assert detection.p_ai is None and detection.regions == [] and not detection.examined
    assert "OpenAI (test signer)" in detection.explanation and "trainedAlgorithmicMedia" in detection.explanation
    assert detection.image.sha256 == hashlib.sha256(IMAGE).hexdigest()
    assert (detection.image.width, detection.image.height, detection.image.format) == (200, 150, "PNG")
    assert detection.evidence == [SIGNED_AI] and detection.timings_ms.evidence_ms > 0


@pytest.mark.parametrize(
    "items", [[], [TAMPERED], [CAMERA], [TAMPERED, CAMERA]], ids=["none", "tampered", "camera", "both"]
)
def test_inconclusive_evidence_is_reported_and_the_model_decides(items: list[EvidenceItem]) -> None:
    detection, engine, _ = _run(items)
    assert len(engine.requests) == 2  # both queries ran
    assert detection.decision == "real" and detection.decision_source == "model"
    assert detection.evidence == items


def test_run_model_anyway_keeps_the_evidence_decision_with_the_models_boxes() -> None:
    detection, engine, _ = _run([INFOTEXT], EvidenceSettings(run_model_anyway=True))
    assert len(engine.requests) == 2
    assert detection.decision == "ai_generated" and detection.decision_source == "evidence" and detection.reason is None
    assert detection.regions and detection.p_ai is not None  # the model's own numbers stay visible
    assert (
        detection.explanation.startswith("The upload declares itself AI-generated")
        and "looks like a photo" in detection.explanation
    )


def test_evidence_that_may_not_decide_is_only_reported() -> None:
    detection, engine, _ = _run([SIGNED_AI], EvidenceSettings(decides=False))
    assert len(engine.requests) == 2 and detection.decision == "real" and detection.evidence == [SIGNED_AI]


def test_disabled_evidence_reads_nothing() -> None:
    detection, _, seen = _run([SIGNED_AI], EvidenceSettings(enabled=False))
    assert seen == [] and detection.decision_source == "model" and detection.evidence == []


def test_an_upload_the_decoder_would_refuse_is_refused_even_with_evidence() -> None:
    with pytest.raises(ImageTooLargeError):
        _run([SIGNED_AI], limits=ImageLimits(max_pixels=100, max_decoded_pixels=100))
