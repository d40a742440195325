"""The teacher's answers kept next to the dataset: `collect` rewrites the dataset, the teacher is expensive.

Keyed by event, image digest and label, appended as JSON lines as answers arrive, so an interrupted run
keeps what it paid for; torn or foreign lines are ignored (that record is asked again).
"""

from __future__ import annotations

import json
from pathlib import Path

from zoomguard.dataset.records import TrainingRecord
from zoomguard.dataset.teacher import TeacherAnswer

MAX_CACHE_LINE = 1024 * 1024


class TeacherCache:
    """Usable teacher answers by (event_id, image sha256, label), appended as they arrive (JSON lines)."""

    def __init__(self, path: Path, teacher: str):
        self._path = path
        self._teacher = teacher
        self._answers: dict[tuple[str, str, str], TeacherAnswer] = {}
        if path.is_file():
            with path.open("rb") as source:
                for line in source:
                    self._load(line)

    def _load(self, line: bytes) -> None:
        if len(line) > MAX_CACHE_LINE:
            return
        try:
            item = json.loads(line)
            key = (str(item["event_id"]), str(item["image_sha256"]), str(item["label"]))
            answer = TeacherAnswer(
                explanation=str(item["explanation"]),
                boxes=tuple((int(a), int(b), int(c), int(d)) for a, b, c, d in item["boxes"]),
                findings=tuple(str(f) for f in item["findings"]),
            )
        except (ValueError, KeyError, TypeError):
            return  # a torn or foreign line: ask the teacher again
        if len(answer.findings) == len(answer.boxes):
            self._answers[key] = answer

    def get(self, record: TrainingRecord) -> TeacherAnswer | None:
        return self._answers.get((record.event_id, record.image_sha256, record.label))

    def put(self, record: TrainingRecord, answer: TeacherAnswer) -> None:
        self._answers[(record.event_id, record.image_sha256, record.label)] = answer
        line = {
            "event_id": record.event_id,
            "image_sha256": record.image_sha256,
            "label": record.label,
            "teacher": self._teacher,
            "explanation": answer.explanation,
            "boxes": [list(box) for box in answer.boxes],
            "findings": list(answer.findings),
        }
        with self._path.open("a", encoding="utf-8") as sink:
            sink.write(json.dumps(line) + "\n")
