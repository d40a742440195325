"""Label Studio tasks for review requests: the model's boxes as pre-annotations reviewers correct."""

from __future__ import annotations

from typing import Any

from zoomguard.review.ls_boxes import box_to_percent
from zoomguard.schemas.events import VerdictEvent


def label_studio_task(verdict: VerdictEvent, image: str, reason: str) -> dict[str, Any]:
    """A Label Studio task with the model's boxes as rectanglelabels (percent of the original image)
    and its verdict as a choice; `score` lets reviewers sort by how sure the model was."""
    width, height = verdict.image.width, verdict.image.height
    results: list[dict[str, Any]] = []
    for index, region in enumerate(verdict.regions):
        results.append(
            {
                "id": f"region-{index}",
                "from_name": "regions",
                "to_name": "image",
                "type": "rectanglelabels",
                "original_width": width,
                "original_height": height,
                "image_rotation": 0,
                "value": {
                    **box_to_percent(region.box, width, height),
                    "rotation": 0,
                    "rectanglelabels": ["suspicious"],
                },
                "meta": {"text": [region.finding]} if region.finding else {},
            }
        )
    if verdict.decision != "uncertain":
        results.append(
            {
                "id": "verdict",
                "from_name": "verdict",
                "to_name": "image",
                "type": "choices",
                "value": {"choices": [verdict.decision]},
            }
        )
    return {
        "data": {
            "image": image,
            "event_id": verdict.event_id,
            "content_id": verdict.content_id,
            "explanation": verdict.explanation,
            "review_reason": reason,
            "p_ai": verdict.p_ai,
            "decision_source": verdict.decision_source,
            "evidence": evidence_text(verdict),
        },
        "predictions": [
            {
                "model_version": verdict.model.version,
                "score": verdict.p_ai if verdict.p_ai is not None else 0.5,
                "result": results,
            }
        ],
    }


def evidence_text(verdict: VerdictEvent) -> str:
    """The marks found in the upload, one line each, for the reviewer's view ("" when none)."""
    lines = []
    for item in verdict.evidence:
        state = "valid" if item.valid else "INVALID"
        trust = ", trusted" if item.trusted else ""
        lines.append(f"{item.kind}: {item.claim} ({state}{trust}) from {item.source}: {item.detail}")
    return "\n".join(lines)
