"""The cascade with a scripted engine and a fixed evidence reader: who decides, and whether the model runs."""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from PIL import Image

from zoomguard.detector.engines.base import GenerationRequest
from zoomguard.detector.engines.scripted import ScriptedEngine
from zoomguard.detector.families import FAMILIES
from zoomguard.detector.settings import DetectorSettings
from zoomguard.detector.zoomin import ZoomInDetector
from zoomguard.errors import ImageTooLargeError
from zoomguard.evidence.settings import EvidenceSettings
from zoomguard.known.bank import BankEntry, record_of
from zoomguard.known.hashing import pdq_of_bytes
from zoomguard.known.memory import KnownBank
from zoomguard.known.settings import KnownContentSettings
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


WATERMARK = EvidenceItem(
    kind="watermark", claim="ai_generated", valid=True, source="Stable Diffusion XL invisible watermark",
    detail="48 of 48 bits match",
)  # fmt: skip


def _unsure(request: GenerationRequest) -> tuple[str, float]:
    """P(ai) 0.85: ai_generated at the default threshold 0.8, uncertain once the odds are divided by e."""
    if len(request.turns) == 1:
        return (
            '{"explanation": "odd", "regions": [{"box": [10, 10, 60, 60], "finding": "smear"}], "verdict": "ai_generated"}',
            0.85,
        )
    return '{"explanation": "odd hands", "verdict": "ai_generated"}', 0.85


def _run(items: list[EvidenceItem], settings: EvidenceSettings | None = None, data: bytes = IMAGE,
         limits: ImageLimits | None = None, pixels: list[EvidenceItem] | None = None,
         script: object = _real, bank: KnownBank | None = None, known: KnownContentSettings | None = None,
         ) -> tuple[Detection, ScriptedEngine, list[bytes]]:  # fmt: skip
    engine = ScriptedEngine(script)  # type: ignore[arg-type]
    detector = ZoomInDetector(
        engine, DetectorSettings(), FAMILIES["qwen2_5_vl"], ModelInfo(name="m", version="v1", family="qwen2_5_vl")
    )
    seen: list[bytes] = []

    def read(raw: bytes) -> list[EvidenceItem]:
        seen.append(raw)
        return items

    def read_pixels(image: Image.Image) -> list[EvidenceItem]:
        seen.append(b"pixels:%dx%d" % image.size)
        return pixels or []

    cascade = Cascade(
        detector, read, settings or EvidenceSettings(), limits or ImageLimits(),
        read_pixels=read_pixels if pixels is not None else None, bank=bank, known=known,
    )  # fmt: skip
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


# --- the pixel stage: read on the one decode the model would use, before the model ---


def test_a_watermark_in_the_pixels_decides_without_the_model() -> None:
    detection, engine, seen = _run([], pixels=[WATERMARK])
    assert seen == [IMAGE, b"pixels:200x150"] and engine.requests == []
    assert detection.decision == "ai_generated" and detection.decision_source == "evidence"
    assert detection.evidence == [WATERMARK] and "Stable Diffusion XL" in detection.explanation
    assert detection.image.sha256 == hashlib.sha256(IMAGE).hexdigest() and detection.image.width == 200
    timings = detection.timings_ms
    assert timings.decode_ms > 0 and timings.evidence_ms > 0 and timings.total_ms >= timings.decode_ms


def test_no_watermark_lets_the_model_decide_with_the_byte_evidence_kept() -> None:
    detection, engine, seen = _run([TAMPERED], pixels=[])
    assert seen == [IMAGE, b"pixels:200x150"] and len(engine.requests) == 2
    assert detection.decision_source == "model" and detection.evidence == [TAMPERED]


def test_the_pixels_are_not_read_when_the_bytes_decided() -> None:
    detection, engine, seen = _run([INFOTEXT], pixels=[WATERMARK])
    assert seen == [IMAGE] and engine.requests == [] and detection.evidence == [INFOTEXT]


def test_a_watermark_with_run_model_anyway_keeps_both() -> None:
    detection, engine, _ = _run([], EvidenceSettings(run_model_anyway=True), pixels=[WATERMARK])
    assert len(engine.requests) == 2 and detection.decision_source == "evidence"
    assert detection.regions and detection.evidence == [WATERMARK]
    assert detection.explanation.count("The upload declares itself AI-generated") == 1


# --- a trusted camera lowers the prior; it never decides `real` on its own ---


def test_a_trusted_capture_lowers_the_prior_and_the_model_still_decides() -> None:
    plain, _, _ = _run([], script=_unsure)
    assert plain.decision == "ai_generated" and plain.p_ai == pytest.approx(0.85, abs=1e-3)
    camera, engine, _ = _run([CAMERA], script=_unsure)
    assert len(engine.requests) == 2 and camera.decision_source == "model"
    assert camera.p_ai == pytest.approx(0.85 / (0.85 + 0.15 * 2.718281828), abs=1e-3)  # odds / e
    assert camera.decision == "uncertain" and camera.reason == "low_confidence"
    assert camera.p_ai_raw == plain.p_ai_raw  # calibrations are fitted on the raw number, untouched
    assert "trusted capture signature (Leica)" in camera.explanation


@pytest.mark.parametrize(
    "items",
    [
        [CAMERA.model_copy(update={"trusted": False})],
        [CAMERA.model_copy(update={"valid": False})],
        [CAMERA, TAMPERED],  # an AI claim anywhere, even an invalid one, keeps the prior
        [CAMERA.model_copy(update={"kind": "xmp", "trusted": False})],
    ],
    ids=["untrusted", "invalid", "ai-ingredient", "xmp-capture"],
)
def test_only_a_trusted_clean_capture_moves_the_prior(items: list[EvidenceItem]) -> None:
    detection, _, _ = _run(items, script=_unsure)
    assert detection.decision == "ai_generated" and detection.p_ai == pytest.approx(0.85, abs=1e-3)


def test_the_capture_prior_can_be_switched_off() -> None:
    detection, _, _ = _run([CAMERA], EvidenceSettings(trusted_capture_log_odds=0.0), script=_unsure)
    assert detection.decision == "ai_generated" and "capture" not in detection.explanation


# --- known content: a copy of an image the bank holds is decided by its entry ---


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    from sklearn.datasets import load_sample_images  # ships its two photos; no download

    return Image.fromarray(load_sample_images().images[0]).reduce(2)  # 320x214: PDQ quality 100


def _bank_of(data: bytes, label: str = "ai_generated", settings: KnownContentSettings | None = None) -> KnownBank:
    known = settings or KnownContentSettings()
    held = KnownBank(known)
    entry = BankEntry(
        entry_id="review:first-upload", pdq=pdq_of_bytes(data).hex, quality=100, label=label, source="review",
        decided_by="alice", decided_at="2026-12-01T10:00:00Z", event_id="first-upload",
    )  # fmt: skip
    held.apply(*record_of(entry))
    return held


def test_a_re_encoded_resized_copy_is_decided_by_the_bank_without_the_model(photo: Image.Image) -> None:
    original = encode(photo, "PNG")
    copy = encode(photo.resize((photo.width * 3 // 4, photo.height * 3 // 4)), "JPEG")
    detection, engine, _ = _run([], data=copy, bank=_bank_of(original))
    assert engine.requests == [] and detection.decision == "ai_generated"
    assert detection.decision_source == "known_content" and detection.p_ai is None
    [item] = detection.evidence
    assert (item.kind, item.claim, item.source, item.valid, item.trusted) == (
        "known_content", "ai_generated", "review:first-upload", True, True
    )  # fmt: skip
    assert "alice" in detection.explanation and "review:first-upload" in detection.explanation
    assert detection.image.pdq == pdq_of_bytes(copy).hex and detection.image.pdq_quality == 100
    assert detection.timings_ms.known_content_ms > 0 and detection.timings_ms.decode_ms > 0


def test_a_real_label_decides_real(photo: Image.Image) -> None:
    data = encode(photo, "PNG")
    detection, engine, _ = _run([], data=data, bank=_bank_of(data, "real"), script=_unsure)
    assert engine.requests == [] and detection.decision == "real" and detection.decision_source == "known_content"


def test_an_unrelated_upload_goes_to_the_model_and_carries_its_hash(photo: Image.Image) -> None:
    detection, engine, _ = _run([], data=IMAGE, bank=_bank_of(encode(photo, "PNG")))
    assert len(engine.requests) == 2 and detection.decision_source == "model"
    assert detection.image.pdq == pdq_of_bytes(IMAGE).hex and detection.evidence == []


def test_run_model_anyway_keeps_the_banks_label_with_the_models_boxes(photo: Image.Image) -> None:
    data = encode(photo, "PNG")
    known = KnownContentSettings(run_model_anyway=True)
    detection, engine, _ = _run([], data=data, bank=_bank_of(data, "real", known), known=known, script=_unsure)
    assert len(engine.requests) == 2 and detection.regions
    assert detection.decision == "real" and detection.decision_source == "known_content"
    assert detection.explanation.startswith("A copy of an image already decided real")


def test_a_match_that_may_not_decide_is_only_reported(photo: Image.Image) -> None:
    data = encode(photo, "PNG")
    known = KnownContentSettings(decides=False)
    detection, engine, _ = _run([], data=data, bank=_bank_of(data, "real", known), known=known, script=_unsure)
    assert len(engine.requests) == 2 and detection.decision == "ai_generated" and detection.decision_source == "model"
    assert [item.kind for item in detection.evidence] == ["known_content"]


def test_evidence_comes_before_the_bank(photo: Image.Image) -> None:
    data = encode(photo, "PNG")
    detection, engine, _ = _run([], data=data, bank=_bank_of(data, "real"), pixels=[WATERMARK])
    assert engine.requests == [] and detection.decision_source == "evidence" and detection.image.pdq is not None
