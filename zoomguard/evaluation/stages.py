"""The stages eval puts an image through: the model alone (the papers' numbers), the cascade (what zoomguard
serves: evidence in the bytes and pixels, known content, then the model), or both from one pass.

With both, the cascade runs first through a `ModelTap`: when the model decided inside the cascade with no
prior from the evidence, it ran exactly as it runs alone, so that answer is also the model's (no second
query); only the images a stage before the model decided (or whose prior it shifted) run the model again.
An image the decoder cannot read is a problem of the dataset for every stage (scored by none), so each
stage's numbers cover the same images; another refusal (an image over the size limits) is an `error`
prediction, counted wrong as it is for collected datasets.
"""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from zoomguard.detector.zoomin import BeforeModel, ZoomInDetector
from zoomguard.errors import BadInputError, ConfigError, ImageDecodeError
from zoomguard.evaluation.report import prediction_of
from zoomguard.evaluation.scores import Prediction
from zoomguard.evaluation.settings import Stages
from zoomguard.evaluation.sources.items import EvalItem, Problem
from zoomguard.evidence.reader import PixelReader
from zoomguard.evidence.settings import EvidenceSettings
from zoomguard.known.memory import KnownBank
from zoomguard.known.settings import KnownContentSettings
from zoomguard.media.settings import ImageLimits
from zoomguard.schemas.detection import Detection, ModelInfo
from zoomguard.worker.cascade import Cascade, EvidenceReader

STAGE_NAMES: dict[Stages, tuple[str, ...]] = {
    "model": ("model",),
    "cascade": ("cascade",),
    "both": ("model", "cascade"),
}
Outcome = dict[str, Prediction] | Problem


class ModelTap:
    """The detector as the cascade sees it; keeps the answers the model gave exactly as it would alone."""

    def __init__(self, detector: ZoomInDetector):
        self._detector = detector
        self._alone: dict[str, Detection] = {}

    @property
    def model(self) -> ModelInfo:
        return self._detector.model

    async def detect_bytes(
        self,
        data: bytes,
        *,
        request_id: str,
        before_model: BeforeModel | None = None,
        prior_log_odds: float = 0.0,
    ) -> Detection:
        detection = await self._detector.detect_bytes(
            data, request_id=request_id, before_model=before_model, prior_log_odds=prior_log_odds
        )
        if detection.decision_source == "model" and prior_log_odds == 0.0:
            self._alone[request_id] = detection
        return detection

    def take(self, request_id: str) -> Detection | None:
        return self._alone.pop(request_id, None)


@dataclass(frozen=True)
class CascadeParts:
    """What the cascade needs besides the model: the readers, their settings and the bank (if any)."""

    read_evidence: EvidenceReader | None
    read_pixels: PixelReader | None
    evidence: EvidenceSettings
    limits: ImageLimits
    known: KnownContentSettings
    bank: KnownBank | None = None
    bank_description: dict[str, Any] | None = None


def cascade_parts(
    evidence: EvidenceSettings, known: KnownContentSettings, limits: ImageLimits, bank_csv: str
) -> CascadeParts:
    """The readers the worker builds, and the bank from a hash list when one is given."""
    from zoomguard.evidence.reader import build_pixel_reader, build_reader

    bank, description = load_bank(Path(bank_csv), known) if bank_csv else (None, None)
    return CascadeParts(
        build_reader(evidence), build_pixel_reader(evidence), evidence, limits, known, bank, description
    )


def load_bank(path: Path, known: KnownContentSettings) -> tuple[KnownBank, dict[str, Any]]:
    """A KnownBank holding a hash list's entries (as `bank import` reads the CSV); its bad rows are reported."""
    from zoomguard.known.bank import record_of
    from zoomguard.known.csv_io import import_csv

    if not known.enabled:
        raise ConfigError("--bank needs the known-content stage: known.enabled is false")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"cannot read the hash list {path}: {exc}") from None
    result = import_csv(io.StringIO(text), now=datetime.now(UTC), list_name=path.name)
    bank = KnownBank(known)
    for entry in result.entries:
        bank.apply(*record_of(entry))
    bank.loaded()
    description = {
        "path": str(path),
        "entries": len(bank),
        "bad_rows": [{"line": p.line, "reason": p.reason} for p in result.problems],
    }
    return bank, description


class StageScorer:
    """One image through the chosen stages; a dict of predictions by stage, or the image's decoding problem."""

    def __init__(self, detector: ZoomInDetector, stages: Stages, parts: CascadeParts | None):
        self.stages = STAGE_NAMES[stages]
        self._detector = detector
        self._tap = ModelTap(detector)
        self._cascade: Cascade | None = None
        if "cascade" in self.stages:
            if parts is None:
                raise ConfigError("the cascade stage needs its readers (CascadeParts)")
            self._cascade = Cascade(
                self._tap,
                parts.read_evidence,
                parts.evidence,
                parts.limits,
                read_pixels=parts.read_pixels,
                bank=parts.bank,
                known=parts.known,
            )

    async def score(self, item: EvalItem, data: bytes, index: int) -> Outcome:
        found: dict[str, Detection | BadInputError] = {}
        try:
            if self._cascade is not None:
                cascade, request_id = self._cascade, f"eval-cascade-{index}"
                found["cascade"] = await _attempt(lambda: cascade.detect_bytes(data, request_id=request_id))
                alone = self._tap.take(request_id)
                if "model" in self.stages:
                    found["model"] = alone or await self._model(data, index)
            else:
                found["model"] = await self._model(data, index)
        except ImageDecodeError as exc:
            return Problem(item.location, f"unreadable image: {exc}", "decoding", item.item_id)
        return {stage: _prediction(item, found[stage]) for stage in self.stages}

    async def _model(self, data: bytes, index: int) -> Detection | BadInputError:
        return await _attempt(lambda: self._detector.detect_bytes(data, request_id=f"eval-model-{index}"))


async def _attempt(call: Callable[[], Awaitable[Detection]]) -> Detection | BadInputError:
    """The detection, or the refusal of an image that can never run (a decode failure propagates)."""
    try:
        return await call()
    except ImageDecodeError:
        raise
    except BadInputError as exc:
        return exc


def _prediction(item: EvalItem, found: Detection | BadInputError) -> Prediction:
    if isinstance(found, BadInputError):
        return prediction_of(item.item_id, item.label, item.source, item.boxes, None, f"{found.kind}: {found}")
    return prediction_of(item.item_id, item.label, item.source, item.boxes, found)
