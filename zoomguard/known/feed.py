"""Review decisions into the bank: which hash a decision is about, and the entry it becomes. Pure, no Kafka.

A reviewer's tool knows the event it labelled, rarely the image: zoomguard joins the decision's `event_id` with
the PDQ hash its own verdicts and review requests carry (`image.pdq`), learned by following those topics, or
hashes the decision's own `image` when it has one. The entry id is `review:<event_id>`, so a later decision on
the same event replaces the earlier one in the bank.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass

from zoomguard.known.bank import MAX_NOTE_LENGTH, BankEntry, review_entry_id
from zoomguard.known.hashing import normalise_pdq
from zoomguard.schemas.review import ReviewDecision


@dataclass(frozen=True)
class Hashed:
    pdq: str
    quality: int


class JoinTable:
    """event_id -> its upload's PDQ hash, from the verdicts and review requests read; the newest
    `max_events` are kept (least recently learned dropped first), so memory stays bounded."""

    def __init__(self, max_events: int):
        self._max = max_events
        self._hashes: OrderedDict[str, Hashed] = OrderedDict()

    def __len__(self) -> int:
        return len(self._hashes)

    def get(self, event_id: str) -> Hashed | None:
        return self._hashes.get(event_id)

    def learn(self, value: bytes | None) -> bool:
        """Learn from one VerdictEvent or ReviewRequest record value; False when it has no usable hash (decided
        before decoding, not JSON, another shape). Records are other systems' too: nothing here raises."""
        try:
            event = json.loads(value or b"")
            image = (event.get("verdict") or event).get("image") or {}
            event_id, pdq, quality = event["event_id"], image.get("pdq"), image.get("pdq_quality")
            if not isinstance(event_id, str) or not isinstance(pdq, str) or not isinstance(quality, int):
                return False
            hashed = Hashed(normalise_pdq(pdq), quality)
        except (ValueError, TypeError, KeyError, AttributeError):
            return False
        self._hashes[event_id] = hashed
        self._hashes.move_to_end(event_id)
        while len(self._hashes) > self._max:
            self._hashes.popitem(last=False)
        return True


def review_entry(decision: ReviewDecision, hashed: Hashed) -> BankEntry:
    """The bank entry a reviewer's decision becomes: their label for every copy of that image."""
    note = (decision.explanation or "").strip()[:MAX_NOTE_LENGTH] or None
    return BankEntry(
        entry_id=review_entry_id(decision.event_id),
        pdq=hashed.pdq,
        quality=hashed.quality,
        label=decision.label,
        source="review",
        decided_by=decision.reviewer,
        decided_at=decision.decided_at,
        event_id=decision.event_id,
        note=note,
    )
