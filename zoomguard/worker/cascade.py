"""The cascade, cheapest first: the marks in the upload's own bytes, the marks in its pixels, then the model.

Evidence is read on the original bytes before anything is decoded (a re-encode would destroy both the
metadata and the C2PA hashes). When it is conclusive the model does not run (unless
`evidence.run_model_anyway`), and the verdict says so (`decision_source: evidence`) and why. The header is
still probed, so an upload the decoder would refuse (bomb, unknown format) is refused the same way. Otherwise
the upload is decoded once, within the pixel budget, and the pixel readers (invisible watermarks) see it
before the model does.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable

from opentelemetry import trace
from PIL import Image

from zoomguard.detector.zoomin import ZoomInDetector
from zoomguard.evidence.decide import conclusive, explanation, trusted_capture
from zoomguard.evidence.settings import EvidenceSettings
from zoomguard.media.images import DecodedImage, probe_image
from zoomguard.media.settings import ImageLimits
from zoomguard.schemas.detection import Detection, FirstPass, ImageInfo, ModelInfo, Timings, Usage
from zoomguard.schemas.evidence import EvidenceItem

EvidenceReader = Callable[[bytes], list[EvidenceItem]]  # CPU only, never raises on hostile bytes
PixelReader = Callable[[Image.Image], list[EvidenceItem]]  # on the decoded RGB upload, never raises


class Cascade:
    def __init__(
        self,
        detector: ZoomInDetector,
        read_evidence: EvidenceReader | None,
        settings: EvidenceSettings,
        limits: ImageLimits,
        tracer: trace.Tracer | None = None,
        read_pixels: PixelReader | None = None,
    ):
        self._detector = detector
        self._read = read_evidence if settings.enabled else None
        self._read_pixels = read_pixels if settings.enabled else None
        self._settings = settings
        self._limits = limits
        self._tracer = tracer or trace.get_tracer("zoomguard")

    def _deciding(self, items: list[EvidenceItem]) -> list[EvidenceItem]:
        return conclusive(items) if self._settings.decides else []

    async def detect_bytes(self, data: bytes, *, request_id: str) -> Detection:
        if self._read is None and self._read_pixels is None:
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
        pixel_ms = 0.0

        async def read_pixels(decoded: DecodedImage) -> Detection | None:
            nonlocal pixel_items, pixel_ms
            if self._read_pixels is None or self._deciding(items):  # decided already: the model runs for boxes
                return None
            mark = time.perf_counter()
            with self._tracer.start_as_current_span("evidence.pixels") as span:
                pixel_items = await asyncio.to_thread(self._read_pixels, decoded.image)
                span.set_attribute("zoomguard.evidence.items", len(pixel_items))
            pixel_ms = (time.perf_counter() - mark) * 1000.0
            if not self._deciding(pixel_items) or self._settings.run_model_anyway:
                return None
            image = ImageInfo(sha256=decoded.sha256, width=decoded.width, height=decoded.height, format=decoded.format)
            return evidence_detection(image, items + pixel_items, self._detector.model, pixel_ms)

        capture = trusted_capture(items)
        prior = self._settings.trusted_capture_log_odds if capture is not None else 0.0
        detection = await self._detector.detect_bytes(
            data, request_id=request_id, before_model=read_pixels, prior_log_odds=prior
        )
        found = items + pixel_items
        spent = evidence_ms + pixel_ms
        timings = detection.timings_ms.model_copy(
            update={
                "evidence_ms": round(spent, 3),
                "total_ms": round(detection.timings_ms.total_ms + evidence_ms, 3),  # pixel time is inside it
            }
        )
        update: dict[str, object] = {"evidence": found, "timings_ms": timings}
        if detection.decision_source == "evidence":  # the pixel stage decided: nothing to merge
            pass
        elif self._deciding(found):  # the model ran for its boxes and words; the evidence decides
            update |= {
                "decision": "ai_generated",
                "reason": None,
                "decision_source": "evidence",
                "explanation": f"{explanation(found)} {detection.explanation}".strip(),
            }
        elif capture is not None and prior != 0.0:
            note = f"A trusted capture signature ({capture.source}) lowered the prior of AI."
            update["explanation"] = f"{note} {detection.explanation}".strip()
        return detection.model_copy(update=update)


def evidence_detection(image: ImageInfo, items: list[EvidenceItem], model: ModelInfo, evidence_ms: float) -> Detection:
    """The verdict of conclusive evidence: ai_generated, no regions, no P(ai) (the model did not run)."""
    return Detection(
        decision="ai_generated",
        p_ai=None,
        p_ai_raw=None,
        reason=None,
        regions=[],
        explanation=explanation(items),
        first_pass=FirstPass(verdict=None, explanation="", p_ai=None),
        examined=False,
        crops=0,
        model=model,
        image=image,
        timings_ms=Timings(evidence_ms=round(evidence_ms, 3), total_ms=round(evidence_ms, 3)),
        usage=Usage(),
        decision_source="evidence",
        evidence=items,
    )
