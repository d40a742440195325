"""GRPO reward functions, in TRL's signature: `(prompts, completions, **columns) -> list[float | None]`.

Each sample is one query of ZoomIn, named by its `stage` column ("locate" = Query 1, "examine" =
Query 2). A reward returns None where it does not apply, and TRL then leaves it out of that sample's sum:
- format (both stages): 1.0 when the answer is exactly the serving answer schema of its stage.
- localisation (locate only): mean over predicted boxes of the best IoU with a reference box, both in
  original-image pixels (predicted boxes are mapped from the model's coordinate space with the family
  adapter, as serving does). No reference boxes -> None (the reviewer marked no region, so there is
  nothing to ground against); reference boxes but no usable predicted box -> 0.0.
- accuracy (examine only): 1.0 when the final verdict equals the label. Never on Query 1: rewarding the
  first verdict collapsed accuracy in the paper.
- explanation (examine only, when a reference explanation exists): BLEU-2 against it.
Answers are read with the serving parser, so training rewards exactly what the worker can use.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from zoomguard.detector.families import FAMILIES
from zoomguard.detector.geometry import Box, iou, sanitize_boxes
from zoomguard.detector.parsing import ParsedAnswer, parse_answer
from zoomguard.schemas.answers import ExamineAnswer, LocateAnswer
from zoomguard.training.bleu import bleu2

LOCATE = "locate"
EXAMINE = "examine"
MAX_SCORED_BOXES = 32  # a runaway answer with hundreds of boxes is scored on its first 32

RewardFunc = Callable[..., list[float | None]]


def completion_text(completion: Any) -> str:
    """TRL passes plain strings (standard datasets) or assistant messages (conversational ones)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion:
        content = completion[-1].get("content", "") if isinstance(completion[-1], dict) else ""
        if isinstance(content, list):  # structured parts: keep the text ones
            return "".join(part.get("text") or "" for part in content if isinstance(part, dict))
        return content if isinstance(content, str) else ""
    return ""


def format_reward(
    prompts: Sequence[Any], completions: Sequence[Any], stage: Sequence[str], **_: Any
) -> list[float | None]:
    """1.0 when the answer parses without repair and validates against its stage's answer model."""
    return [_format_score(completion_text(c), s) for c, s in zip(completions, stage, strict=True)]


def localisation_reward(
    prompts: Sequence[Any],
    completions: Sequence[Any],
    stage: Sequence[str],
    ref_boxes: Sequence[Sequence[Sequence[int]]],
    width: Sequence[int],
    height: Sequence[int],
    model_width: Sequence[int],
    model_height: Sequence[int],
    family: Sequence[str],
    **_: Any,
) -> list[float | None]:
    rewards: list[float | None] = []
    for i, completion in enumerate(completions):
        if stage[i] != LOCATE or not ref_boxes[i]:
            rewards.append(None)
            continue
        parsed = parse_answer(completion_text(completion), with_regions=True, max_regions=MAX_SCORED_BOXES)
        predicted = predicted_boxes(parsed, family[i], (model_width[i], model_height[i]), (width[i], height[i]))
        references = [Box(*map(float, box)) for box in ref_boxes[i]]
        rewards.append(mean_best_iou(predicted, references))
    return rewards


def accuracy_reward(
    prompts: Sequence[Any], completions: Sequence[Any], stage: Sequence[str], label: Sequence[str], **_: Any
) -> list[float | None]:
    rewards: list[float | None] = []
    for completion, s, truth in zip(completions, stage, label, strict=True):
        if s != EXAMINE:
            rewards.append(None)
            continue
        parsed = parse_answer(completion_text(completion), with_regions=False)
        rewards.append(1.0 if parsed.verdict == truth else 0.0)
    return rewards


def explanation_reward(
    prompts: Sequence[Any],
    completions: Sequence[Any],
    stage: Sequence[str],
    reference_explanation: Sequence[str | None],
    **_: Any,
) -> list[float | None]:
    rewards: list[float | None] = []
    for completion, s, reference in zip(completions, stage, reference_explanation, strict=True):
        if s != EXAMINE or not reference:
            rewards.append(None)
            continue
        parsed = parse_answer(completion_text(completion), with_regions=False)
        rewards.append(bleu2(parsed.explanation, reference))
    return rewards


REWARDS: dict[str, RewardFunc] = {
    "format": format_reward,
    "localisation": localisation_reward,
    "accuracy": accuracy_reward,
    "explanation": explanation_reward,
}


def predicted_boxes(
    parsed: ParsedAnswer, family: str, model_size: tuple[int, int], original: tuple[int, int]
) -> list[Box]:
    """The answer's boxes in original pixels, ordered, clamped and non-degenerate (as serving keeps them)."""
    adapter = FAMILIES[family]
    mapped = [adapter.to_original(region.box, model_size, original) for region in parsed.regions]
    return sanitize_boxes(mapped, original[0], original[1], max_boxes=MAX_SCORED_BOXES)


def mean_best_iou(predicted: Sequence[Box], references: Sequence[Box]) -> float:
    """Mean over predicted boxes of the best IoU with any reference; 0.0 with no prediction."""
    if not predicted or not references:
        return 0.0
    return sum(max(iou(p, r) for r in references) for p in predicted) / len(predicted)


def _format_score(text: str, stage: str) -> float:
    parsed = parse_answer(text, with_regions=stage == LOCATE, max_regions=MAX_SCORED_BOXES)
    if not parsed.ok or parsed.repaired or parsed.dropped_regions:
        return 0.0
    model: type[BaseModel] = LocateAnswer if stage == LOCATE else ExamineAnswer
    try:
        model.model_validate(json.loads(text[text.find("{") :], strict=False))
    except (ValueError, ValidationError):
        return 0.0
    return 1.0
