"""The pure part of `zoomguard annotate`: which teacher, what to ask it, and how its answer fills a record.

As the paper built its dataset, the teacher is told the known verdict and explains it, with grounded
boxes; the answer has Query 1's shape (explanation, regions, verdict), so it trains the same turn. The
verdict in the schema is pinned to the known label, and an answer that disagrees is refused anyway
(a server without structured outputs). What a reviewer wrote is never replaced: the teacher only fills
what is missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image

from zoomguard.dataset.records import TrainingRecord
from zoomguard.dataset.settings import AnnotateSettings
from zoomguard.detector.engines.base import GenerationRequest, Turn
from zoomguard.detector.engines.settings import EngineSettings
from zoomguard.detector.families import ModelFamily, resolve_family
from zoomguard.detector.geometry import sanitize_boxes
from zoomguard.detector.parsing import parse_answer
from zoomguard.errors import ConfigError, UnavailableError
from zoomguard.schemas.answers import LocateAnswer, response_schema
from zoomguard.schemas.review import Label

_PARSE_REGION_CAP = 64
_MIN_BOX_SIDE = 2.0

TEACHER_PROMPT = (
    "This image is known to be {truth}. You are preparing training data for a detector of AI-generated "
    "images: explain, as an expert, the visual evidence that shows it is {truth}. {focus} {coordinates}"
    '{hints} Answer in JSON with, in this order: "explanation" (your reasoning, grounded in what is '
    'visible), "regions" (at most {max_regions} regions, each with "bbox_2d" and a short "finding"; '
    'an empty list if no region stands out) and "verdict" ("{label}").'
)
_TRUTH = {"ai_generated": "AI-generated", "real": "a real photograph"}
_FOCUS = {
    "ai_generated": "Mark the regions where the generator failed: faces, hands, paws, reflections, shadows, "
    "perspective, garbled text or logos.",
    "real": "Mark the regions with hard-to-forge detail that supports it being real: consistent reflections "
    "and shadows, legible small text and logos, natural textures.",
}


@dataclass(frozen=True)
class Need:
    """What a record lacks; a record that lacks nothing is left alone."""

    explanation: bool
    boxes: bool

    @property
    def any(self) -> bool:
        return self.explanation or self.boxes


@dataclass(frozen=True)
class TeacherAnswer:
    """The teacher's usable answer, boxes already in original pixels, or why there is none."""

    explanation: str = ""
    boxes: tuple[tuple[int, int, int, int], ...] = ()
    findings: tuple[str, ...] = ()
    error: str | None = None
    dropped: int = 0  # boxes refused: unreadable, outside the image, degenerate, too large, over the cap


def teacher_engine_settings(annotate: AnnotateSettings, engine: EngineSettings) -> EngineSettings:
    """Server-mode engine settings for the teacher: annotate's servers, else the detector's servers."""
    own = bool(annotate.server_urls)
    if not (own or engine.server_urls):
        raise ConfigError("annotate needs a teacher server: --server URL (or annotate.server_urls)")
    return engine.model_copy(
        update={
            "mode": "server",
            "model": "",
            "lora_adapter": "",
            "server_urls": annotate.server_urls if own else engine.server_urls,
            "served_model_name": annotate.model or ("" if own else engine.served_model_name),
            "api_key": annotate.api_key or (None if own else engine.api_key),
            "request_timeout_s": annotate.request_timeout_s,
        }
    )


def teacher_family(annotate: AnnotateSettings, served_name: str) -> ModelFamily:
    """The teacher's coordinate family: from annotate.model_family, else from its (served) model name."""
    name = annotate.model or served_name
    if not name and annotate.model_family == "auto":
        raise UnavailableError("no teacher server answered /v1/models (set annotate.model and annotate.model_family)")
    return resolve_family(name, annotate.model_family)


def need_of(record: TrainingRecord, settings: AnnotateSettings) -> Need:
    wants_boxes = record.label == "ai_generated" or settings.regions_for_real
    return Need(explanation=not (record.explanation or "").strip(), boxes=wants_boxes and not record.boxes)


def teacher_prompt(
    record: TrainingRecord,
    family: ModelFamily,
    model_size: tuple[int, int],
    settings: AnnotateSettings,
) -> str:
    """The known label, where to look, the coordinate convention, and the reviewer's notes as hints."""
    hints = []
    if record.explanation:
        hints.append(f" A human reviewer wrote: {record.explanation.strip()!r}.")
    if record.boxes:
        sx, sy = _original_per_model(family, model_size, (record.width, record.height))
        listed = "; ".join(
            f"[{round(x1 / sx)}, {round(y1 / sy)}, {round(x2 / sx)}, {round(y2 / sy)}]" + (f" ({f})" if f else "")
            for (x1, y1, x2, y2), f in zip(record.boxes, _padded(record.findings, len(record.boxes)), strict=True)
        )
        hints.append(f" A human reviewer marked these regions (same coordinates): {listed}.")
    return TEACHER_PROMPT.format(
        truth=_TRUTH[record.label],
        focus=_FOCUS[record.label],
        coordinates=family.coordinate_instruction(model_size),
        hints="".join(hints),
        max_regions=max_regions_for(record.label, settings),
        label=record.label,
    )


def teacher_request(
    record: TrainingRecord,
    image: Image.Image,
    family: ModelFamily,
    size: tuple[int, int],
    settings: AnnotateSettings,
) -> GenerationRequest:
    """One request per record: the image resized to `size` (the teacher's), the prompt, the pinned schema."""
    return GenerationRequest(
        request_id=f"annotate:{record.event_id}",
        turns=(Turn("user", teacher_prompt(record, family, size, settings), (image,)),),
        json_schema=teacher_schema(record.label, family, settings),
        max_tokens=settings.max_tokens,
        top_logprobs=1,
        temperature=settings.temperature,
    )


def max_regions_for(label: Label, settings: AnnotateSettings) -> int:
    return settings.max_regions if label == "ai_generated" or settings.regions_for_real else 0


def teacher_schema(label: Label, family: ModelFamily, settings: AnnotateSettings) -> dict[str, Any]:
    """Query 1's answer schema with the verdict pinned to the known label."""
    most = max_regions_for(label, settings)
    schema = response_schema(
        LocateAnswer,
        max_regions=most,
        min_regions=min(settings.min_regions, most),
        explanation_max_chars=settings.explanation_max_chars,
        finding_max_chars=settings.finding_max_chars,
        coordinate_max=family.coordinate_bound(settings.max_pixels),
    )
    schema["properties"]["verdict"] = {"type": "string", "enum": [label]}
    return schema


def read_teacher_answer(
    text: str,
    label: Label,
    family: ModelFamily,
    model_size: tuple[int, int],
    original: tuple[int, int],
    settings: AnnotateSettings,
) -> TeacherAnswer:
    """Parse leniently, refuse a different verdict, map boxes to original pixels, drop bad and huge ones."""
    parsed = parse_answer(text, with_regions=True, max_regions=_PARSE_REGION_CAP)
    if parsed.verdict is None:
        return TeacherAnswer(error="unparseable")
    if parsed.verdict != label:
        return TeacherAnswer(error="verdict_disagrees")
    width, height = original
    limit = settings.max_box_fraction * width * height
    boxes: list[tuple[int, int, int, int]] = []
    findings: list[str] = []
    dropped = parsed.dropped_regions
    for region in parsed.regions:
        mapped = family.to_original(region.box, model_size, original)
        kept = sanitize_boxes([mapped], width, height, max_boxes=1, min_side=_MIN_BOX_SIDE)
        if not kept or kept[0].area > limit or len(boxes) >= max_regions_for(label, settings):
            dropped += 1
            continue
        boxes.append(kept[0].rounded())
        findings.append(region.finding)
    return TeacherAnswer(parsed.explanation, tuple(boxes), tuple(findings), dropped=dropped)


def fill(record: TrainingRecord, answer: TeacherAnswer) -> tuple[TrainingRecord, Need]:
    """The record with only its missing parts taken from the answer, and what was filled."""
    need = Need(explanation=not (record.explanation or "").strip(), boxes=not record.boxes)
    update: dict[str, Any] = {}
    if need.explanation and answer.explanation:
        update["explanation"] = answer.explanation
    if need.boxes and answer.boxes:
        update["boxes"] = list(answer.boxes)
        update["findings"] = list(answer.findings)
    filled = Need(explanation="explanation" in update, boxes="boxes" in update)
    return (record.model_copy(update=update) if update else record), filled


def _original_per_model(
    family: ModelFamily, model_size: tuple[int, int], original: tuple[int, int]
) -> tuple[float, float]:
    """Original pixels per model coordinate, from the family's own mapping (kept in one place)."""
    x, y, _, _ = family.to_original((1.0, 1.0, 1.0, 1.0), model_size, original)
    return x, y


def _padded(findings: Sequence[str], count: int) -> list[str]:
    return [*findings[:count], *[""] * max(0, count - len(findings))]
