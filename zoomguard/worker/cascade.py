"""The cascade, cheapest first: the marks in the upload's bytes, the marks in its pixels, known content, the model.

Evidence is read on the original bytes before anything is decoded (a re-encode would destroy both the
metadata and the C2PA hashes). When it is conclusive the model does not run (unless
`evidence.run_model_anyway`), and the verdict says so (`decision_source: evidence`) and why. The header is
still probed, so an upload the decoder would refuse (bomb, unknown format) is refused the same way. Otherwise
the upload is decoded once, within the pixel budget, and the pixel readers (invisible watermarks) see it
before the model does; then its PDQ hash (every verdict that decoded carries it) is looked up in the bank of
images reviewers already decided, and a match decides with that entry's label (`decision_source:
known_content`).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from typing import Protocol

from opentelemetry import trace

from zoomguard.detector.zoomin import BeforeModel
from zoomguard.evidence.decide import conclusive, explanation, trusted_capture
from zoomguard.evidence.reader import PixelReader
from zoomguard.evidence.settings import EvidenceSettings
from zoomguard.known.hashing import PdqHash, pdq_of_image
from zoomguard.known.memory import KnownBank, Match
from zoomguard.known.settings import KnownContentSettings
from zoomguard.media.images import DecodedImage, probe_image
from zoomguard.media.settings import ImageLimits
from zoomguard.schemas.detection import (
    Decision,
    DecisionSource,
    Detection,
    FirstPass,
    ImageInfo,
    ModelInfo,
    Timings,
    Usage,
)
from zoomguard.schemas.evidence import EvidenceItem

EvidenceReader = Callable[[bytes], list[EvidenceItem]]  # CPU only, never raises on hostile bytes


class ModelStage(Protocol):
    """What the cascade asks of the model: a ZoomInDetector, or a wrapper that watches it (evaluation's)."""

    @property
    def model(self) -> ModelInfo: ...

    async def detect_bytes(
        self,
        data: bytes,
        *,
        request_id: str,
        before_model: BeforeModel | None = None,
        prior_log_odds: float = 0.0,
    ) -> Detection: ...


class Cascade:
    def __init__(
        self,
        detector: ModelStage,
        read_evidence: EvidenceReader | None,
        settings: EvidenceSettings,
        limits: ImageLimits,
        tracer: trace.Tracer | None = None,
        read_pixels: PixelReader | None = None,
        bank: KnownBank | None = None,
        known: KnownContentSettings | None = None,
    ):
        self._detector = detector
        self._read = read_evidence if settings.enabled else None
        self._read_pixels = read_pixels if settings.enabled else None
        self._known = known or KnownContentSettings()
        self._bank = bank if self._known.enabled else None
        self._settings = settings
        self._limits = limits
        self._tracer = tracer or trace.get_tracer("zoomguard")

    def _look_up(self, bank: KnownBank, decoded: DecodedImage) -> tuple[PdqHash, Match | None]:
        """Off the event loop: hashing takes milliseconds, and the index may rebuild its tables in a lookup."""
        pdq = pdq_of_image(decoded.image, self._known.hash_size, dihedral=self._known.dihedral)
        return pdq, bank.match(pdq)

    def _deciding(self, items: list[EvidenceItem]) -> list[EvidenceItem]:
        return conclusive(items) if self._settings.decides else []

    async def detect_bytes(self, data: bytes, *, request_id: str) -> Detection:
        if self._read is None and self._read_pixels is None and self._bank is None:
            return await self._detector.detect_bytes(data, request_id=request_id)
        started = time.perf_counter()
        items: list[EvidenceItem] = []
        if self._read is not None:
            with self._tracer.start_as_current_span("evidence") as span:
                items = await asyncio.to_thread(self._read, data)
                span.set_attributes(
                    {"zoomguard.evidence.items": len(items), "zoomguard.evidence.decides": bool(self._deciding(items))}
                )
        evidence_ms = (time.perf_counter() - started) * 1000.0
        if self._deciding(items) and not self._settings.run_model_anyway:
            header = await asyncio.to_thread(probe_image, data, self._limits)
            image = ImageInfo(
                sha256=hashlib.sha256(data).hexdigest(), width=header.width, height=header.height, format=header.format
            )
            return evidence_detection(image, items, self._detector.model, evidence_ms)

        pixel_items: list[EvidenceItem] = []
        pixel_ms = known_ms = 0.0
        pdq: PdqHash | None = None
        match: Match | None = None

        async def before_model(decoded: DecodedImage) -> Detection | None:
            nonlocal pixel_items, pixel_ms, known_ms, pdq, match
            image = ImageInfo(sha256=decoded.sha256, width=decoded.width, height=decoded.height, format=decoded.format)
            if self._read_pixels is not None and not self._deciding(items):  # decided: the model runs for boxes
                mark = time.perf_counter()
                with self._tracer.start_as_current_span("evidence.pixels") as span:
                    pixel_items = await asyncio.to_thread(self._read_pixels, decoded.image)
                    span.set_attribute("zoomguard.evidence.items", len(pixel_items))
                pixel_ms = (time.perf_counter() - mark) * 1000.0
            if self._bank is not None:
                mark = time.perf_counter()
                with self._tracer.start_as_current_span("known_content") as span:
                    hashed, match = await asyncio.to_thread(self._look_up, self._bank, decoded)
                    span.set_attributes({"zoomguard.pdq_quality": hashed.quality, "zoomguard.known.match": bool(match)})
                known_ms = (time.perf_counter() - mark) * 1000.0
                pdq = hashed
                image = image.model_copy(update={"pdq": hashed.hex, "pdq_quality": hashed.quality})
            found = items + pixel_items
            if self._deciding(found):
                if self._settings.run_model_anyway or self._deciding(items):
                    return None
                return evidence_detection(image, found, self._detector.model, pixel_ms)
            if match is not None and self._known.decides and not self._known.run_model_anyway:
                return known_detection(image, found, match, self._known, self._detector.model, known_ms)
            return None

        capture = trusted_capture(items)
        prior = self._settings.trusted_capture_log_odds if capture is not None else 0.0
        detection = await self._detector.detect_bytes(
            data, request_id=request_id, before_model=before_model, prior_log_odds=prior
        )
        found = items + pixel_items
        timings = detection.timings_ms.model_copy(
            update={
                "evidence_ms": round(evidence_ms + pixel_ms, 3),
                "known_content_ms": round(known_ms, 3),
                "total_ms": round(detection.timings_ms.total_ms + evidence_ms, 3),  # pixel time is inside it
            }
        )
        update: dict[str, object] = {"timings_ms": timings}
        if pdq is not None:
            update["image"] = detection.image.model_copy(update={"pdq": pdq.hex, "pdq_quality": pdq.quality})
        if detection.decision_source != "model":  # a pixel stage decided, and its verdict has it all
            return detection.model_copy(update=update)
        update["evidence"] = found
        if self._deciding(found):  # the model ran for its boxes and words; the evidence decides
            update |= {
                "decision": "ai_generated",
                "reason": None,
                "decision_source": "evidence",
                "explanation": f"{explanation(found)} {detection.explanation}".strip(),
            }
        elif match is not None and self._known.decides:  # run_model_anyway: the model's boxes, the bank's label
            cited = known_item(match, self._known)
            update |= {
                "decision": match.known.label,
                "reason": None,
                "decision_source": "known_content",
                "evidence": [*found, cited],
                "explanation": f"{known_explanation(match, self._known)} {detection.explanation}".strip(),
            }
        elif match is not None:
            update["evidence"] = [*found, known_item(match, self._known)]
        elif capture is not None and prior != 0.0:
            note = f"A trusted capture signature ({capture.source}) lowered the prior of AI."
            update["explanation"] = f"{note} {detection.explanation}".strip()
        return detection.model_copy(update=update)


def evidence_detection(image: ImageInfo, items: list[EvidenceItem], model: ModelInfo, evidence_ms: float) -> Detection:
    """The verdict of conclusive evidence: ai_generated, no regions, no P(ai) (the model did not run)."""
    timings = Timings(evidence_ms=round(evidence_ms, 3), total_ms=round(evidence_ms, 3))
    return _without_model("ai_generated", "evidence", explanation(items), image, items, model, timings)


def _without_model(
    decision: Decision,
    source: DecisionSource,
    why: str,
    image: ImageInfo,
    items: list[EvidenceItem],
    model: ModelInfo,
    timings: Timings,
) -> Detection:
    """A verdict a stage before the model decided: no regions, no P(ai), no tokens."""
    return Detection(
        decision=decision,
        p_ai=None,
        p_ai_raw=None,
        reason=None,
        regions=[],
        explanation=why,
        first_pass=FirstPass(verdict=None, explanation="", p_ai=None),
        examined=False,
        crops=0,
        model=model,
        image=image,
        timings_ms=timings,
        usage=Usage(),
        decision_source=source,
        evidence=items,
    )


def known_item(match: Match, settings: KnownContentSettings) -> EvidenceItem:
    """The bank entry a verdict cites: which one, how close, and who decided it."""
    known = match.known
    by = f" by {known.decided_by}" if known.decided_by else ""
    return EvidenceItem(
        kind="known_content",
        claim="ai_generated" if known.label == "ai_generated" else "real",
        valid=True,
        trusted=True,
        source=known.entry_id,
        detail=f"PDQ distance {match.distance} of 256 (match at <= {settings.max_distance}); "
        f"{known.source} decision{by} at {known.decided_at}",
    )


def known_explanation(match: Match, settings: KnownContentSettings) -> str:
    known = match.known
    by = f" by {known.decided_by}" if known.decided_by else ""
    return (
        f"A copy of an image already decided {known.label.replace('_', '-')} ({known.source} decision{by}, bank "
        f"entry {known.entry_id}): PDQ distance {match.distance} of 256, match at <= {settings.max_distance}."
    )


def known_detection(
    image: ImageInfo,
    items: list[EvidenceItem],
    match: Match,
    settings: KnownContentSettings,
    model: ModelInfo,
    known_ms: float,
) -> Detection:
    """The verdict of a bank match: the entry's label, no regions, no P(ai) (the model did not run)."""
    decision: Decision = "ai_generated" if match.known.label == "ai_generated" else "real"
    timings = Timings(known_content_ms=round(known_ms, 3), total_ms=round(known_ms, 3))
    why = known_explanation(match, settings)
    cited = [*items, known_item(match, settings)]
    return _without_model(decision, "known_content", why, image, cited, model, timings)
