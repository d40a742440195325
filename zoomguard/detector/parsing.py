"""Lenient, untrusting parsing of the model's answers.

Why lenient: even under a JSON-schema grammar an answer can be cut off by max_tokens, carry control
characters inside strings, or (from a server without structured outputs) wrap the JSON in prose. Why
untrusting: nothing the model says is used before it is checked; an answer that cannot be read is a
result ("unparseable", with the reason), never an exception.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from zoomguard.schemas.answers import Verdict

# Keys are lower-case with spaces and hyphens as underscores (see normalise_verdict).
_VERDICT_WORDS: dict[str, Verdict] = {
    "ai_generated": "ai_generated",
    "ai": "ai_generated",
    "fake": "ai_generated",
    "generated": "ai_generated",
    "synthetic": "ai_generated",
    "real": "real",
    "authentic": "real",
    "genuine": "real",
    "natural": "real",
    "photo": "real",
}
_BOX_KEYS = ("bbox_2d", "bbox", "box", "coordinates")
_FINDING_KEYS = ("finding", "label", "reason", "description")


@dataclass(frozen=True)
class RawRegion:
    """A region as the model wrote it: four numbers in the model's coordinate space."""

    box: tuple[float, float, float, float]
    finding: str


@dataclass(frozen=True)
class ParsedAnswer:
    explanation: str
    verdict: Verdict | None
    regions: tuple[RawRegion, ...] = ()
    error: str | None = None  # why the answer is not usable; None when verdict is known
    repaired: bool = False  # True when the JSON had to be repaired (truncated, wrapped, trailing commas)
    dropped_regions: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None


def parse_answer(text: str, *, with_regions: bool, max_regions: int = 16) -> ParsedAnswer:
    """Read one answer; regions are read only for Query 1 (`with_regions`)."""
    document, repaired = _load_json_object(text)
    if document is None:
        return ParsedAnswer(explanation="", verdict=None, error="no JSON object in the answer")
    explanation = _text_field(document, ("explanation", "reasoning", "analysis"))
    verdict = normalise_verdict(document.get("verdict", document.get("label")))
    regions: tuple[RawRegion, ...] = ()
    dropped = 0
    if with_regions:
        regions, dropped = _read_regions(document.get("regions", document.get("boxes")), max_regions)
    error = None if verdict is not None else "missing or unknown verdict"
    return ParsedAnswer(explanation, verdict, regions, error, repaired, dropped)


def normalise_verdict(value: Any) -> Verdict | None:
    """Map the spellings models use ("AI-generated", "Fake", "authentic") onto the two verdicts."""
    if not isinstance(value, str):
        return None
    key = re.sub(r"[\s\-]+", "_", value.strip().lower())
    return _VERDICT_WORDS.get(key)


def _text_field(document: dict[str, Any], keys: tuple[str, ...]) -> str:
    for key in keys:
        value = document.get(key)
        if isinstance(value, str):
            return _clean_text(value)
    return ""


def _clean_text(value: str) -> str:
    """Drop control characters a weak model can emit inside strings; keep newlines as spaces."""
    return re.sub(r"[\x00-\x1f\x7f]+", " ", value).strip()


def _read_regions(value: Any, max_regions: int) -> tuple[tuple[RawRegion, ...], int]:
    if not isinstance(value, list):
        return (), 0
    regions: list[RawRegion] = []
    dropped = 0
    for item in value:
        region = _read_region(item)
        if region is None or len(regions) >= max_regions:
            dropped += 1
            continue
        regions.append(region)
    return tuple(regions), dropped


def _read_region(item: Any) -> RawRegion | None:
    finding = ""
    raw_box: Any = item
    if isinstance(item, dict):
        raw_box = next((item[k] for k in _BOX_KEYS if k in item), None)
        finding = next((_clean_text(item[k]) for k in _FINDING_KEYS if isinstance(item.get(k), str)), "")
    if not isinstance(raw_box, list | tuple) or len(raw_box) != 4:
        return None
    numbers = []
    for value in raw_box:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            return None
        try:
            number = float(value)
        except (ValueError, OverflowError):  # "abc", or an integer too long for a float
            return None
        if not math.isfinite(number):
            return None
        numbers.append(number)
    return RawRegion((numbers[0], numbers[1], numbers[2], numbers[3]), finding)


def _load_json_object(text: str) -> tuple[dict[str, Any] | None, bool]:
    """The first JSON object in `text`, repaired if it was cut off; (None, False) when there is none."""
    start = text.find("{")
    if start < 0:
        return None, False
    body = text[start:]
    direct = _try_loads(body)
    if isinstance(direct, dict):
        return direct, start > 0 and bool(text[:start].strip())
    candidates = [_balanced_prefix(body), _close_truncated(body)]
    for candidate in candidates:
        if candidate is None:
            continue
        for variant in (candidate, _drop_trailing_commas(candidate)):
            loaded = _try_loads(variant)
            if isinstance(loaded, dict):
                return loaded, True
    return None, False


def _try_loads(text: str) -> Any:
    try:
        return json.loads(text, strict=False, parse_int=_parse_int)
    except (ValueError, RecursionError):
        return None


def _parse_int(digits: str) -> float | int:
    """Integers longer than any pixel coordinate become inf (dropped later) instead of failing the
    whole answer: a weak model under an integer grammar can write thousands of digits."""
    return int(digits) if len(digits.lstrip("-")) <= 18 else float("inf")


def _balanced_prefix(text: str) -> str | None:
    """The first complete {...} in text (answers wrapped in prose or followed by junk)."""
    depth = 0
    in_string = escaped = False
    for index, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char == '"':
            in_string = True
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth == 0:
                return text[: index + 1]
    return None


def _close_truncated(text: str) -> str | None:
    """Close an answer cut off mid-way: finish the open string, drop a dangling key, close brackets."""
    stack: list[str] = []
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char == '"':
            in_string = True
        elif char in "{[":
            stack.append("}" if char == "{" else "]")
        elif char in "}]":
            if not stack:
                return None
            stack.pop()
    if not stack:
        return None
    repaired = text
    if in_string:
        repaired = (repaired[:-1] if escaped else repaired) + '"'
    # A trailing `"key"` or `"key":` with no value cannot be closed meaningfully: drop it.
    repaired = re.sub(r'([{,])\s*"[^"]*"\s*:?\s*$', r"\1", repaired)
    repaired = re.sub(r"[,:\s]+$", "", repaired)
    return repaired + "".join(reversed(stack))


def _drop_trailing_commas(text: str) -> str:
    return re.sub(r",\s*([}\]])", r"\1", text)
