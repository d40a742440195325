"""What `zoomguard annotate` did, counted as each answer is applied to its record (pure)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from zoomguard.dataset.records import TrainingRecord
from zoomguard.dataset.teacher import TeacherAnswer, fill


@dataclass
class AnnotateReport:
    records: int = 0
    complete: int = 0  # needed nothing
    requests: int = 0
    from_cache: int = 0
    annotated: int = 0
    explanations_added: int = 0
    boxes_added: int = 0
    boxes_proposed: int = 0  # regions in the teacher's usable answers
    boxes_dropped: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    filled: dict[str, list[str]] = field(default_factory=dict)  # event_id -> fields the teacher wrote
    teacher: str = ""

    def summary(self) -> dict[str, Any]:
        return {
            "teacher": self.teacher,
            "records": self.records,
            "complete": self.complete,
            "requests": self.requests,
            "from_cache": self.from_cache,
            "annotated": self.annotated,
            "explanations_added": self.explanations_added,
            "boxes_added": self.boxes_added,
            "boxes_proposed": self.boxes_proposed,
            "boxes_dropped": self.boxes_dropped,
            "failed": dict(sorted(self.failed.items())),
        }


def apply_answer(record: TrainingRecord, answer: TeacherAnswer, report: AnnotateReport) -> TrainingRecord:
    """The record with the answer's missing parts filled in; the report counts what happened."""
    if answer.error is not None:
        report.failed[answer.error] += 1
        return record
    report.boxes_proposed += len(answer.boxes) + answer.dropped
    report.boxes_dropped += answer.dropped
    updated, filled = fill(record, answer)
    if not (filled.explanation or filled.boxes):
        report.failed["nothing_usable"] += 1
        return updated
    report.annotated += 1
    report.explanations_added += filled.explanation
    report.boxes_added += len(updated.boxes) if filled.boxes else 0
    report.filled[record.event_id] = [
        name for name, on in (("explanation", filled.explanation), ("boxes", filled.boxes)) if on
    ]
    return updated
