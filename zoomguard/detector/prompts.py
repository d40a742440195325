"""The two ZoomIn questions. Wording follows the paper's method: look where generators fail, then re-check."""

from __future__ import annotations

from collections.abc import Sequence

LOCATE_PROMPT = (
    "Is this image a real photograph or AI-generated? First scan the whole image. Look for the places "
    "where image generators typically fail (faces, hands, paws, reflections, shadows, perspective) and "
    "for hard-to-forge detail (logos, small text). {coordinates} Answer in JSON with, in this order: "
    '"explanation" (your preliminary reasoning), "regions" (at most {max_regions} suspicious regions, '
    'each with "bbox_2d" and a short "finding"; an empty list if nothing stands out) and "verdict" '
    '("real" or "ai_generated").'
)

EXAMINE_WITH_CROPS = (
    "Here are zoomed-in crops of the regions you marked, in order:\n{findings}\nExamine each crop "
    "together with the full image and correct your reasoning where the detail shows otherwise. Answer "
    'in JSON with "explanation" (your final reasoning, grounded in the crops) and "verdict" ("real" or '
    '"ai_generated").'
)

EXAMINE_WITHOUT_CROPS = (
    "You marked no specific region. Examine the whole image once more, closely, and give your final "
    'answer in JSON with "explanation" and "verdict" ("real" or "ai_generated").'
)


def locate_prompt(coordinate_instruction: str, max_regions: int) -> str:
    return LOCATE_PROMPT.format(coordinates=coordinate_instruction, max_regions=max_regions)


def examine_prompt(findings: Sequence[str]) -> str:
    if not findings:
        return EXAMINE_WITHOUT_CROPS
    listed = "\n".join(f"{i}. {finding.strip() or 'region'}" for i, finding in enumerate(findings, 1))
    return EXAMINE_WITH_CROPS.format(findings=listed)
