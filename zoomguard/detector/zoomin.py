"""The two-stage ZoomIn flow: locate (Query 1), crop and zoom, examine (Query 2), decide.

Query 2 is the second turn of Query 1's conversation, so its prompt starts with Query 1's prompt token
for token (image included) and the engine's prefix cache serves it instead of recomputing it.

The served model (version, LoRA adapter, calibration) is one immutable value swapped whole by `use`:
a detection reads it once, so both queries run on one adapter and the verdict names the version that
produced it, even when a new version is promoted halfway through.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from PIL import Image

from zoomguard.detector.calibration import calibrate
from zoomguard.detector.confidence import Thresholds, p_ai_from_logprobs, shift_log_odds
from zoomguard.detector.crops import CropPlan, cut_crops, plan_crops
from zoomguard.detector.engines.base import Engine, Generation, GenerationRequest, Turn
from zoomguard.detector.families import ModelFamily
from zoomguard.detector.geometry import Box, sanitize_boxes
from zoomguard.detector.parsing import ParsedAnswer, RawRegion, parse_answer
from zoomguard.detector.prompts import examine_prompt, locate_prompt
from zoomguard.detector.settings import DetectorSettings
from zoomguard.errors import ConfigError
from zoomguard.media.images import DecodedImage, decode_image, probe_image, resize_to
from zoomguard.media.pixel_budget import PixelBudget
from zoomguard.schemas.answers import VERDICT_MARKER, ExamineAnswer, LocateAnswer, response_schema
from zoomguard.schemas.detection import (
    Decision,
    Detection,
    FirstPass,
    ImageInfo,
    ModelInfo,
    Region,
    Timings,
    UncertainReason,
    Usage,
)
from zoomguard.schemas.review import Calibration

_PARSE_REGION_CAP = 64

# What runs on the decoded pixels before the model (the cascade's pixel stages: watermarks, known content):
# a Detection ends the detection there, None lets the model run.
BeforeModel = Callable[[DecodedImage], Awaitable["Detection | None"]]


@dataclass(frozen=True)
class ServingModel:
    """What verdicts are produced with: the identity stamped on them, the engine adapter (None: base
    weights) and the calibration of P(ai) that ships with that version (None: raw P(ai))."""

    info: ModelInfo
    adapter: str | None = None
    calibration: Calibration | None = None


class _Original:
    """Hands the decoded upload to exactly one detection, so that no reference outlives its crops."""

    def __init__(self, decoded: DecodedImage):
        self._decoded: DecodedImage | None = decoded

    def take(self) -> DecodedImage:
        decoded, self._decoded = self._decoded, None
        if decoded is None:
            raise RuntimeError("an original image is detected once")
        return decoded


@dataclass(frozen=True)
class _Decided:
    decision: Decision
    p_ai: float | None
    p_ai_raw: float | None
    reason: UncertainReason | None
    explanation: str


@dataclass(frozen=True)
class _Located:
    generation: Generation
    parsed: ParsedAnswer
    p_ai: float | None
    regions: tuple[tuple[Box, str], ...]  # sanitised, original pixels, with findings


@dataclass(frozen=True)
class _Examined:
    generation: Generation
    parsed: ParsedAnswer
    p_ai: float | None


class ZoomInDetector:
    """Runs ZoomIn on one image at a time; call it concurrently and the engine batches the requests."""

    def __init__(
        self,
        engine: Engine,
        settings: DetectorSettings,
        family: ModelFamily,
        model: ModelInfo | ServingModel,
        tracer: trace.Tracer | None = None,
    ):
        self._engine = engine
        self._tracer = tracer or trace.NoOpTracer()
        self._settings = settings
        self._family = family
        self._serving = model if isinstance(model, ServingModel) else ServingModel(info=model)
        self._thresholds = Thresholds(ai_at=settings.ai_threshold, real_at=settings.real_threshold)
        coordinate_max = family.coordinate_bound(settings.max_pixels)
        try:
            self._locate_tokens, self._examine_tokens = settings.answer_budgets(coordinate_max)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        schema_caps: dict[str, Any] = {
            "max_regions": settings.max_regions,
            "min_regions": settings.min_regions,
            "coordinate_max": coordinate_max,
            "explanation_max_chars": settings.explanation_max_chars,
            "finding_max_chars": settings.finding_max_chars,
            "charset": settings.answer_charset,
        }
        self._pixels = PixelBudget(settings.limits.max_decoded_pixels)
        self._locate_schema = response_schema(LocateAnswer, **schema_caps)
        self._examine_schema = response_schema(ExamineAnswer, **schema_caps)

    @property
    def model(self) -> ModelInfo:
        """The version new detections are stamped with."""
        return self._serving.info

    @property
    def serving(self) -> ServingModel:
        return self._serving

    @property
    def engine(self) -> Engine:
        return self._engine

    def use(self, serving: ServingModel) -> None:
        """Serve `serving` from the next detection on; detections already running finish on theirs."""
        self._serving = serving

    @property
    def pixel_budget(self) -> PixelBudget:
        """Shared with whoever else decodes uploads in this process (review thumbnails)."""
        return self._pixels

    async def detect_bytes(
        self,
        data: bytes,
        *,
        request_id: str,
        before_model: BeforeModel | None = None,
        prior_log_odds: float = 0.0,
    ) -> Detection:
        """Decode (off the event loop: large images take tens of ms) within the pixel budget, and detect.

        The original is held only until its crops are cut: from then on the lease is returned.
        `before_model` sees the decoded pixels first and may decide instead of the model; `prior_log_odds`
        shifts the calibrated P(ai) before the thresholds (evidence that makes AI less likely: < 0)."""
        started = time.perf_counter()
        with self._tracer.start_as_current_span("decode") as span:
            header = await asyncio.to_thread(probe_image, data, self._settings.limits)
            lease = await self._pixels.acquire(header.pixels)
            try:
                decode = functools.partial(decode_image, data, self._settings.limits, probed=header)
                original = _Original(await asyncio.to_thread(decode))
            except BaseException:
                lease.release()
                raise
            span.set_attributes({"image.width": header.width, "image.height": header.height})
        try:
            return await self._detect(original, request_id, started, lease.release, before_model, prior_log_odds)
        finally:
            lease.release()

    async def detect_image(
        self,
        decoded: DecodedImage,
        *,
        request_id: str,
        started: float | None = None,
        before_model: BeforeModel | None = None,
        prior_log_odds: float = 0.0,
    ) -> Detection:
        """Detect on an image decoded by the caller (benchmarks, evaluation): outside the pixel budget."""
        started = time.perf_counter() if started is None else started
        return await self._detect(_Original(decoded), request_id, started, lambda: None, before_model, prior_log_odds)

    async def _detect(
        self,
        original: _Original,
        request_id: str,
        started: float,
        release: Callable[[], None],
        before_model: BeforeModel | None,
        prior_log_odds: float,
    ) -> Detection:
        serving = self._serving  # read once: every request and the stamp of this detection agree
        decode_ms = _ms_since(started)
        decoded = original.take()
        if before_model is not None and (early := await before_model(decoded)) is not None:
            timings = early.timings_ms.model_copy(update={"decode_ms": decode_ms, "total_ms": _ms_since(started)})
            return early.model_copy(update={"timings_ms": timings})
        image_info = ImageInfo(sha256=decoded.sha256, width=decoded.width, height=decoded.height, format=decoded.format)
        size = (decoded.width, decoded.height)
        model_size = self._family.model_size(*size, self._settings.min_pixels, self._settings.max_pixels)
        model_image = await asyncio.to_thread(resize_to, decoded.image, model_size)
        first_turn = Turn(
            "user",
            locate_prompt(self._family.coordinate_instruction(model_size), self._settings.max_regions),
            (model_image,),
        )

        mark = time.perf_counter()
        with self._tracer.start_as_current_span("query1.locate") as span:
            located = await self._locate(first_turn, model_size, size, request_id, serving.adapter)
            span.set_attributes(
                {"zoomguard.regions": len(located.regions), "zoomguard.prompt_tokens": located.generation.prompt_tokens}
            )
        locate_ms = _ms_since(mark)

        mark = time.perf_counter()
        with self._tracer.start_as_current_span("crop") as span:
            boxes = [box for box, _ in located.regions]
            plans = plan_crops(boxes, decoded.width, decoded.height, self._settings.crops)
            crops = await asyncio.to_thread(self._cut, decoded.image, plans) if plans else []
            span.set_attribute("zoomguard.crops", len(crops))
        del decoded  # the original at full resolution is not needed any more: give its pixels back
        release()
        crop_ms = _ms_since(mark)

        examined: _Examined | None = None
        mark = time.perf_counter()
        if plans or self._settings.no_region_policy == "examine_full_image":
            findings = [located.regions[plan.region_index][1] for plan in plans]
            with self._tracer.start_as_current_span("query2.examine") as span:
                examined = await self._examine(
                    first_turn, located.generation, findings, crops, request_id, serving.adapter
                )
                span.set_attribute("zoomguard.cached_prompt_tokens", examined.generation.cached_prompt_tokens or 0)
        examine_ms = _ms_since(mark) if examined else 0.0

        decided = self._decide(located, examined, serving.calibration, prior_log_odds)
        return Detection(
            decision=decided.decision,
            p_ai=_rounded(decided.p_ai),
            p_ai_raw=_rounded(decided.p_ai_raw),
            reason=decided.reason,
            regions=[
                Region(box=box.rounded(), box_norm=box.normalised(*size), finding=finding)
                for box, finding in located.regions
            ],
            explanation=decided.explanation,
            first_pass=FirstPass(
                verdict=located.parsed.verdict,
                explanation=located.parsed.explanation,
                p_ai=_rounded(located.p_ai),  # raw: calibrations are fitted on the final verdict
            ),
            examined=examined is not None,
            crops=len(crops) if examined else 0,
            model=serving.info,
            image=image_info,
            timings_ms=Timings(
                decode_ms=decode_ms,
                locate_ms=locate_ms,
                crop_ms=crop_ms,
                examine_ms=examine_ms,
                total_ms=_ms_since(started),
            ),
            usage=Usage(
                locate_prompt_tokens=located.generation.prompt_tokens,
                locate_completion_tokens=located.generation.completion_tokens,
                examine_prompt_tokens=examined.generation.prompt_tokens if examined else 0,
                examine_completion_tokens=examined.generation.completion_tokens if examined else 0,
                examine_cached_tokens=examined.generation.cached_prompt_tokens if examined else None,
            ),
        )

    async def _locate(
        self,
        first_turn: Turn,
        model_size: tuple[int, int],
        size: tuple[int, int],
        request_id: str,
        adapter: str | None,
    ) -> _Located:
        generation = await self._engine.generate(
            GenerationRequest(
                request_id=f"{request_id}:locate",
                turns=(first_turn,),
                json_schema=self._locate_schema,
                max_tokens=self._locate_tokens,
                top_logprobs=self._settings.top_logprobs,
                adapter=adapter,
                score_marker=VERDICT_MARKER,
                affinity=request_id,
            )
        )
        # The grammar caps regions at max_regions; the parser's own cap only guards servers without one.
        # The configured cap applies after sanitising, so a degenerate box does not crowd out a good one.
        parsed = parse_answer(generation.text, with_regions=True, max_regions=_PARSE_REGION_CAP)
        p_ai = p_ai_from_logprobs(generation.tokens) if parsed.ok else None
        return _Located(generation, parsed, p_ai, self._to_original(parsed.regions, model_size, size))

    async def _examine(
        self,
        first_turn: Turn,
        located: Generation,
        findings: list[str],
        crops: list[Image.Image],
        request_id: str,
        adapter: str | None,
    ) -> _Examined:
        generation = await self._engine.generate(
            GenerationRequest(
                request_id=f"{request_id}:examine",
                turns=(
                    first_turn,
                    Turn("assistant", located.text, token_ids=located.token_ids),
                    Turn("user", examine_prompt(findings), tuple(crops)),
                ),
                json_schema=self._examine_schema,
                max_tokens=self._examine_tokens,
                top_logprobs=self._settings.top_logprobs,
                adapter=adapter,
                score_marker=VERDICT_MARKER,
                affinity=request_id,
            )
        )
        parsed = parse_answer(generation.text, with_regions=False)
        p_ai = p_ai_from_logprobs(generation.tokens) if parsed.ok else None
        return _Examined(generation, parsed, p_ai)

    def _to_original(
        self, regions: tuple[RawRegion, ...], model_size: tuple[int, int], size: tuple[int, int]
    ) -> tuple[tuple[Box, str], ...]:
        """Model-space boxes -> clamped, non-degenerate original-pixel boxes, capped in number."""
        kept: list[tuple[Box, str]] = []
        for region in regions:
            mapped = self._family.to_original(region.box, model_size, size)
            boxes = sanitize_boxes([mapped], size[0], size[1], max_boxes=1)
            if boxes and len(kept) < self._settings.max_regions:
                kept.append((boxes[0], region.finding))
        return tuple(kept)

    def _cut(self, image: Image.Image, plans: list[CropPlan]) -> list[Image.Image]:
        """Cut and zoom the crops, then snap each to a size the model takes without resizing again."""
        crops = cut_crops(image, plans)
        return [
            resize_to(
                crop,
                self._family.model_size(*crop.size, self._settings.min_pixels, self._settings.max_pixels),
            )
            for crop in crops
        ]

    def _decide(
        self, located: _Located, examined: _Examined | None, calibration: Calibration | None, prior_log_odds: float
    ) -> _Decided:
        """The final answer wins when Query 2 ran; otherwise Query 1's verdict stands. The thresholds
        apply to the calibrated P(ai), shifted by the prior."""
        if examined is None:
            if not located.parsed.ok:
                return _Decided("uncertain", None, None, "unparseable_locate", located.parsed.explanation)
            return self._by_confidence(located.p_ai, calibration, prior_log_odds, located.parsed.explanation)
        if not examined.parsed.ok:
            return _Decided("uncertain", None, None, "unparseable_examine", examined.parsed.explanation)
        return self._by_confidence(examined.p_ai, calibration, prior_log_odds, examined.parsed.explanation)

    def _by_confidence(
        self, raw: float | None, calibration: Calibration | None, prior_log_odds: float, explanation: str
    ) -> _Decided:
        p_ai = shift_log_odds(calibrate(raw, calibration), prior_log_odds)
        decision = self._thresholds.decide(p_ai)
        if decision != "uncertain":
            return _Decided(decision, p_ai, raw, None, explanation)
        return _Decided(decision, p_ai, raw, "no_confidence" if p_ai is None else "low_confidence", explanation)


def _rounded(p: float | None) -> float | None:
    return None if p is None else round(p, 6)


def _ms_since(mark: float) -> float:
    return round((time.perf_counter() - mark) * 1000.0, 3)
