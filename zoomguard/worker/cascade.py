"""The cascade, cheapest first: the marks in the upload's own bytes, then the model.

Evidence is read on the original bytes before anything is decoded (a re-encode would destroy both the
metadata and the C2PA hashes). When it is conclusive the model does not run (unless
`evidence.run_model_anyway`), and the verdict says so (`decision_source: evidence`) and why. The header is
still probed, so an upload the decoder would refuse (bomb, unknown format) is refused the same way.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable

from opentelemetry import trace

from zoomguard.detector.zoomin import ZoomInDetector
from zoomguard.evidence.decide import conclusive, explanation
from zoomguard.evidence.settings import EvidenceSettings
from zoomguard.media.images import ImageHeader, probe_image
from zoomguard.media.settings import ImageLimits
from zoomguard.schemas.detection import Detection, FirstPass, ImageInfo, ModelInfo, Timings, Usage
from zoomguard.schemas.evidence import EvidenceItem

EvidenceReader = Callable[[bytes], list[EvidenceItem]]  # CPU only, never raises on hostile bytes


class Cascade:
    def __init__(
        self,
        detector: ZoomInDetector,
        read_evidence: EvidenceReader | None,
        settings: EvidenceSettings,
        limits: ImageLimits,
        tracer: trace.Tracer | None = None,
    ):
        self._detector = detector
        self._read = read_evidence if settings.enabled else None
        self._settings = settings
        self._limits = limits
        self._tracer = tracer or trace.get_tracer("zoomguard")

    async def detect_bytes(self, data: bytes, *, request_id: str) -> Detection:
        if self._read is None:
            return await self._detector.detect_bytes(data, request_id=request_id)
        started = time.perf_counter()
        with self._tracer.start_as_current_span("evidence") as span:
            items = await asyncio.to_thread(self._read, data)
            deciding = conclusive(items) if self._settings.decides else []
            span.set_attributes({"zoomguard.evidence.items": len(items), "zoomguard.evidence.decides": bool(deciding)})
        evidence_ms = (time.perf_counter() - started) * 1000.0
        if deciding and not self._settings.run_model_anyway:
            header = await asyncio.to_thread(probe_image, data, self._limits)
            return evidence_detection(data, header, items, self._detector.model, evidence_ms)
        detection = await self._detector.detect_bytes(data, request_id=request_id)
        timings = detection.timings_ms.model_copy(
            update={
                "evidence_ms": round(evidence_ms, 3),
                "total_ms": round(detection.timings_ms.total_ms + evidence_ms, 3),
            }
        )
        update: dict[str, object] = {"evidence": items, "timings_ms": timings}
        if deciding:  # the model ran for its boxes and words; the evidence decides
            update |= {
                "decision": "ai_generated",
                "reason": None,
                "decision_source": "evidence",
                "explanation": f"{explanation(items)} {detection.explanation}".strip(),
            }
        return detection.model_copy(update=update)


def evidence_detection(
    data: bytes, header: ImageHeader, items: list[EvidenceItem], model: ModelInfo, evidence_ms: float
) -> Detection:
    """The verdict of conclusive evidence: ai_generated, no regions, no P(ai) (the model did not run)."""
    image = ImageInfo(
        sha256=hashlib.sha256(data).hexdigest(), width=header.width, height=header.height, format=header.format
    )
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
