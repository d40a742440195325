"""A dataset's label values mapped to `ai_generated` / `real` by an explicit table: an unknown value is an error.

Benchmarks write their labels in many ways (folders `0_real` / `1_fake`, GenImage's `nature` / `ai`, manifest
values 0 / 1, "fake", "real"). The default table below is the one documented in the README; `--label-map
VALUE=LABEL` adds values or overrides a default (`0=ai_generated,1=real` for a dataset that counts the other
way). Values are compared as lowercase text without surrounding spaces; an integral float (1.0) is its integer.
A Hugging Face ClassLabel column is first turned into its class name (so the dataset's own names decide).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import get_args

from zoomguard.schemas.review import Label

LABELS: tuple[Label, ...] = get_args(Label)
DEFAULT_LABELS: Mapping[str, Label] = MappingProxyType(
    {
        "real": "real",
        "0_real": "real",
        "0": "real",
        "nature": "real",
        "natural": "real",
        "authentic": "real",
        "ai_generated": "ai_generated",
        "ai-generated": "ai_generated",
        "ai": "ai_generated",
        "fake": "ai_generated",
        "1_fake": "ai_generated",
        "1": "ai_generated",
        "generated": "ai_generated",
        "synthetic": "ai_generated",
    }
)


def parse_pairs(entries: Sequence[str]) -> dict[str, Label]:
    """`["fake=ai_generated,nature=real"]` -> {"fake": "ai_generated", "nature": "real"}; ValueError when malformed."""
    table: dict[str, Label] = {}
    for entry in entries:
        for pair in entry.split(","):
            if not pair.strip():
                continue
            value, sep, label = pair.partition("=")
            key, target = value.strip().lower(), label.strip()
            if not sep or not key:
                raise ValueError(f"label map entry {pair!r} is not VALUE=LABEL")
            if target not in LABELS:
                raise ValueError(f"label map entry {pair!r}: the label must be ai_generated or real")
            table[key] = "real" if target == "real" else "ai_generated"
    return table


def label_text(value: object) -> str:
    """A label value as the table compares it; ValueError for a missing value or one that is not a scalar."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError("missing label")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float | str):
        return str(value).strip().lower()
    raise ValueError(f"a label is a number or text, got {type(value).__name__} {str(value)[:60]!r}")


@dataclass(frozen=True)
class LabelMap:
    """The defaults with the user's pairs over them."""

    table: Mapping[str, Label] = field(default_factory=lambda: dict(DEFAULT_LABELS))

    @classmethod
    def with_pairs(cls, entries: Sequence[str]) -> LabelMap:
        return cls({**DEFAULT_LABELS, **parse_pairs(entries)})

    def knows(self, text: str) -> bool:
        return text.strip().lower() in self.table

    def label_of(self, value: object, names: Sequence[str] | None = None) -> tuple[Label, str]:
        """(label, the value as text) or ValueError saying why; `names`: a ClassLabel column's class names."""
        if names is not None and isinstance(value, int) and not isinstance(value, bool):
            if not 0 <= value < len(names):
                raise ValueError(f"class index {value} is outside the column's {len(names)} class names")
            value = names[value]
        text = label_text(value)
        label = self.table.get(text)
        if label is None:
            raise ValueError(
                f"unknown label {text[:60]!r} (known: {', '.join(sorted(self.table))}); "
                f"map it with --label-map {text[:60]}=ai_generated (or =real)"
            )
        return label, text

    def to_json(self) -> dict[str, str]:
        return dict(sorted(self.table.items()))
