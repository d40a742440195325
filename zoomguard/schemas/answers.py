"""The model's two answers, defined once: used for constrained decoding, parsing and rewards.

Why pydantic: the JSON schema handed to the engine's structured-output backend is generated from the
same models the parser validates against, so the grammar and the parser cannot drift apart.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Verdict = Literal["real", "ai_generated"]
VERDICTS: tuple[Verdict, ...] = ("real", "ai_generated")


class RegionAnswer(BaseModel):
    """One suspicious region; `bbox_2d` is Qwen2.5-VL's own grounding key and box order."""

    model_config = ConfigDict(extra="forbid")

    bbox_2d: list[int] = Field(min_length=4, max_length=4, description="x1, y1, x2, y2")
    finding: str = Field(description="what looks generated in this region")


class LocateAnswer(BaseModel):
    """Query 1: preliminary explanation, then regions, then a first verdict (the paper's order)."""

    model_config = ConfigDict(extra="forbid")

    explanation: str
    regions: list[RegionAnswer]
    verdict: Verdict


class ExamineAnswer(BaseModel):
    """Query 2: the corrected explanation and the final verdict after looking at the crops."""

    model_config = ConfigDict(extra="forbid")

    explanation: str
    verdict: Verdict


# Both answers end with the verdict, so a compact answer (no free whitespace) reaches the verdict's value
# right after this marker. Engines use it to report logprobs only where P(ai_generated) is read.
VERDICT_MARKER = '"verdict":"'


Charset = Literal["ascii", "unicode"]
# Printable ASCII without the quote and the backslash: no escape sequences, one byte (so at most one token of a
# byte-level tokenizer) per character, and the same language in every grammar backend.
_ASCII_TEXT = "[ -!#-\\[\\]-~]"
# The most bytes one character of a string can take in the answer: ASCII 1; otherwise UTF-8's 4 (xgrammar's
# maxLength strings admit no escapes, which would take 6).
_BYTES_PER_CHAR: dict[Charset, int] = {"ascii": 1, "unicode": 4}


def response_schema(
    model: type[BaseModel],
    *,
    max_regions: int,
    explanation_max_chars: int,
    finding_max_chars: int,
    min_regions: int = 0,
    coordinate_max: int | None = None,
    charset: Charset = "unicode",
) -> dict[str, Any]:
    """A self-contained JSON schema (no $ref) with the configured length caps applied.

    The caps bound generation length: without them a weak model can fill a string until max_tokens and
    the answer never closes. `charset="ascii"` writes each cap as a pattern (grammar backends ignore maxLength
    beside a pattern), so the longest answer in tokens is known exactly: see `worst_case_tokens`.
    """
    schema = _inline_refs(model.model_json_schema())
    props = schema["properties"]
    _cap_text(props["explanation"], explanation_max_chars, charset)
    if "regions" in props:
        props["regions"]["maxItems"] = max_regions
        if min_regions:
            props["regions"]["minItems"] = min_regions
        if coordinate_max is not None:
            # Bounds the digits a model can write; the exact per-image clamp happens after parsing.
            coordinate = props["regions"]["items"]["properties"]["bbox_2d"]["items"]
            coordinate.update({"minimum": 0, "maximum": coordinate_max})
        _cap_text(props["regions"]["items"]["properties"]["finding"], finding_max_chars, charset)
    return _strip_titles(schema)


def _cap_text(node: dict[str, Any], max_chars: int, charset: Charset) -> None:
    if charset == "ascii":
        node["pattern"] = ascii_text_pattern(max_chars)
    else:
        node["maxLength"] = max_chars


# xgrammar 0.1 fails to compile a regex repetition above 128 against a real tokenizer ("Check failed:
# per_rule_fsm_hashes"), so longer caps are written as runs of at most 128.
_RUN = 128


def ascii_text_pattern(max_chars: int) -> str:
    """Up to `max_chars` characters of _ASCII_TEXT as a regex, unambiguous, with no repetition above 128:
    a length below 128k is k-1 or fewer full runs plus a shorter tail, the rest k full runs plus the remainder."""
    full, rest = divmod(max_chars, _RUN)
    text = _ASCII_TEXT
    if full == 0:
        return f"^{text}{{0,{rest}}}$"
    below = f"(?:{text}{{{_RUN}}}){{0,{full - 1}}}{text}{{0,{_RUN - 1}}}" if full > 1 else f"{text}{{0,{_RUN - 1}}}"
    top = f"(?:{text}{{{_RUN}}}){{{full}}}{text}{{0,{rest}}}"
    return f"^(?:{below}|{top})$"


def worst_case_tokens(
    model: type[BaseModel],
    *,
    max_regions: int,
    explanation_max_chars: int,
    finding_max_chars: int,
    coordinate_max: int,
    charset: Charset,
) -> int:
    """The most tokens a compact answer under `response_schema` can take, end-of-sequence included.

    Why exact: a max_tokens below it cuts a grammar-constrained answer mid-string, and the cut answer is
    unparseable. Every token of a byte-level tokenizer stands for at least one byte (special tokens are not
    allowed inside the grammar), so the longest answer's UTF-8 bytes bound its tokens."""
    wide = "x" * _BYTES_PER_CHAR[charset]  # a character that costs the most bytes, written as that many bytes
    answer: dict[str, Any] = {"explanation": wide * explanation_max_chars}
    if "regions" in model.model_fields:
        region = {"bbox_2d": [coordinate_max] * 4, "finding": wide * finding_max_chars}
        answer["regions"] = [region] * max_regions
    answer["verdict"] = max(VERDICTS, key=len)
    return len(json.dumps(answer, separators=(",", ":")).encode()) + 1


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                name = node["$ref"].rsplit("/", 1)[-1]
                return resolve(copy.deepcopy(defs[name]))
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def _strip_titles(node: Any) -> Any:
    if isinstance(node, dict):
        # Annotations only (string values); a property that happens to be named "title" is a dict and stays.
        return {
            k: _strip_titles(v) for k, v in node.items() if not (k in ("title", "description") and isinstance(v, str))
        }
    if isinstance(node, list):
        return [_strip_titles(item) for item in node]
    return node
