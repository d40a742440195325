"""Training records -> the two ZoomIn queries as chat samples, built exactly as serving builds them.

Why one builder for SFT and GRPO: the model must be trained on the prompts it will see at inference
(same wording, same model-sized image, same coordinate instruction, same zoomed crops), or training and
serving drift apart. Query 2's prompt is Query 1's turn plus the *reference* Query 1 answer (built from
the record), then the crops of the reference boxes and the examine prompt: stage 2 is trained as its own
sample (see grpo.py for why it is not rolled out from the model's own Query 1 answer).

SFT targets are serialised with the serving answer models, compact, as constrained decoding emits them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from PIL import Image

from zoomguard.dataset.records import TrainingRecord
from zoomguard.detector.crops import cut_crops, plan_crops
from zoomguard.detector.families import ModelFamily
from zoomguard.detector.geometry import Box
from zoomguard.detector.prompts import examine_prompt, locate_prompt
from zoomguard.detector.settings import CropSettings
from zoomguard.errors import BadInputError
from zoomguard.media.images import decode_image, resize_to
from zoomguard.media.settings import ImageLimits
from zoomguard.schemas.answers import ExamineAnswer, LocateAnswer, RegionAnswer

Stage = Literal["locate", "examine"]
STAGES: tuple[Stage, ...] = ("locate", "examine")

_LABEL_WORDS = {"ai_generated": "AI-generated", "real": "a real photograph"}


@dataclass(frozen=True)
class ConversationSpec:
    """The serving settings a conversation depends on (from DetectorSettings and the model family)."""

    family: ModelFamily
    min_pixels: int
    max_pixels: int
    max_regions: int
    crops: CropSettings
    limits: ImageLimits = field(default_factory=ImageLimits)


@dataclass(frozen=True)
class Sample:
    """One training sample: a chat prompt, its images in placeholder order, the target and reward columns."""

    stage: Stage
    prompt: list[dict[str, Any]]
    completion: list[dict[str, Any]]
    images: list[Image.Image]
    event_id: str
    label: str
    ref_boxes: list[list[int]]  # original pixels
    width: int
    height: int
    model_width: int
    model_height: int
    family: str
    reference_explanation: str | None
    source: str

    def columns(self) -> dict[str, Any]:
        """The dataset row (TRL reads prompt / completion / images; rewards read the rest)."""
        return {key: getattr(self, key) for key in self.__dataclass_fields__}


def build_samples(
    records: Iterable[TrainingRecord], spec: ConversationSpec, stages: Sequence[Stage] = STAGES
) -> list[Sample]:
    """Both queries of every record, in record order (locate first), for the stages asked."""
    samples: list[Sample] = []
    for record in records:
        samples += record_samples(record, spec, stages)
    return samples


def record_samples(record: TrainingRecord, spec: ConversationSpec, stages: Sequence[Stage] = STAGES) -> list[Sample]:
    if not record.image_bytes:
        raise BadInputError(f"record {record.event_id}: no image bytes in the dataset (re-collect with images)")
    try:
        decoded = decode_image(record.image_bytes, spec.limits)
    except BadInputError as exc:
        raise BadInputError(f"record {record.event_id}: {exc}") from exc
    size = (decoded.width, decoded.height)
    model_size = spec.family.model_size(*size, spec.min_pixels, spec.max_pixels)
    model_image = resize_to(decoded.image, model_size)
    regions = _reference_regions(record, size)
    locate_turn = _user(locate_prompt(spec.family.coordinate_instruction(model_size), spec.max_regions), 1)
    locate_answer = locate_target(record, regions, spec.family, model_size, size, spec.max_regions)
    common: dict[str, Any] = {
        "event_id": record.event_id,
        "label": record.label,
        "ref_boxes": [[round(v) for v in (b.x1, b.y1, b.x2, b.y2)] for b, _ in regions],
        "width": size[0],
        "height": size[1],
        "model_width": model_size[0],
        "model_height": model_size[1],
        "family": spec.family.name,
        "reference_explanation": record.explanation,
        "source": record.source,
    }
    samples = []
    if "locate" in stages:
        samples.append(
            Sample(
                stage="locate",
                prompt=[locate_turn],
                completion=[_assistant(locate_answer)],
                images=[model_image],
                **common,
            )
        )
    if "examine" in stages:
        plans = plan_crops([box for box, _ in regions], size[0], size[1], spec.crops)
        crops = [
            resize_to(crop, spec.family.model_size(*crop.size, spec.min_pixels, spec.max_pixels))
            for crop in cut_crops(decoded.image, plans)
        ]
        findings = [regions[plan.region_index][1] for plan in plans]
        prompt = [locate_turn, _assistant(locate_answer), _user(examine_prompt(findings), len(crops))]
        samples.append(
            Sample(
                stage="examine",
                prompt=prompt,
                completion=[_assistant(examine_target(record))],
                images=[model_image, *crops],
                **common,
            )
        )
    return samples


def locate_target(
    record: TrainingRecord,
    regions: Sequence[tuple[Box, str]],
    family: ModelFamily,
    model_size: tuple[int, int],
    original: tuple[int, int],
    max_regions: int,
) -> str:
    """Query 1's reference answer: explanation, reference boxes in the model's space, label as first verdict."""
    answer = LocateAnswer(
        explanation=reference_explanation(record),
        regions=[
            RegionAnswer(bbox_2d=list(to_model_space(box, family, model_size, original)), finding=finding or "region")
            for box, finding in regions[:max_regions]
        ],
        verdict=record.label,
    )
    return answer.model_dump_json()


def examine_target(record: TrainingRecord) -> str:
    return ExamineAnswer(explanation=reference_explanation(record), verdict=record.label).model_dump_json()


def reference_explanation(record: TrainingRecord) -> str:
    """The reviewer's explanation; without one, a plain sentence from the label and the findings (ours)."""
    if record.explanation and record.explanation.strip():
        return record.explanation.strip()
    findings = [f.strip() for f in record.findings if f.strip()]
    text = f"The image is {_LABEL_WORDS[record.label]}."
    return f"{text} Evidence: {'; '.join(findings)}." if findings else text


def to_model_space(
    box: Box, family: ModelFamily, model_size: tuple[int, int], original: tuple[int, int]
) -> tuple[int, int, int, int]:
    """Inverse of ModelFamily.to_original: original pixels -> the integers the model is taught to write."""
    ow, oh = original
    limit_w, limit_h = family.box_space_limits(model_size)
    sx, sy = limit_w / ow, limit_h / oh
    x1, y1 = round(box.x1 * sx), round(box.y1 * sy)
    x2, y2 = round(box.x2 * sx), round(box.y2 * sy)
    return (min(x1, limit_w), min(y1, limit_h), min(x2, limit_w), min(y2, limit_h))


def _reference_regions(record: TrainingRecord, size: tuple[int, int]) -> list[tuple[Box, str]]:
    """The record's boxes clamped to the image (a reviewer's box may overhang), degenerate ones dropped."""
    findings = list(record.findings) + [""] * max(0, len(record.boxes) - len(record.findings))
    regions = []
    for raw, finding in zip(record.boxes, findings, strict=False):
        box = Box.from_corners(*map(float, raw)).clamp(*size)
        if box.area > 0:
            regions.append((box, finding))
    return regions


def _user(text: str, images: int) -> dict[str, Any]:
    """Images before the text, as the serving engines send them."""
    return {"role": "user", "content": [*({"type": "image"} for _ in range(images)), {"type": "text", "text": text}]}


def _assistant(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}
