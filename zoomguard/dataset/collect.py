"""`zoomguard collect`: review decisions (Kafka) -> the training dataset (Parquet shards, records.py).

A snapshot, not a consumer: both topics are read from the beginning to their end at the start, no group
joins, nothing is committed, so re-running gives the same dataset for the same topics. The original image
is taken from the decision itself, else from the original input record (read by assign + seek at the
coordinates the verdict carries, never by scanning the input topic), else from the review task's URL.
The choices are pure (joining.py); this module does the reading, fetching and decoding.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from zoomguard.dataset.joining import (
    FoundImage,
    ImageCandidate,
    RawRecord,
    ReviewContext,
    build_record,
    check_digest,
    event_from_record,
    image_candidates,
    latest_decisions,
    review_contexts,
)
from zoomguard.dataset.records import TrainingRecord, labels, write_dataset
from zoomguard.errors import BadInputError, UnavailableError
from zoomguard.kafka.reading import read_to_end
from zoomguard.kafka.settings import KafkaSettings
from zoomguard.kafka.unreadable import poll_readable
from zoomguard.media.fetch import URLFetcher
from zoomguard.media.images import decode_image
from zoomguard.media.settings import FetchSettings, ImageLimits
from zoomguard.review.settings import ReviewSettings
from zoomguard.schemas.events import ImageRef, SourceRecord
from zoomguard.schemas.review import ReviewDecision

Progress = Callable[[str, int, int], None]  # (stage, done, total)
MAX_LISTED_SKIPS = 1000
_SEEK_GAP = 256  # read on rather than seek when the next wanted offset is this close


@dataclass(frozen=True)
class Miss:
    """Why one candidate (or, last, the whole decision) gave no usable image."""

    reason: str
    detail: str = ""


@dataclass
class CollectReport:
    """What collect did: written counts per split, and every skip by reason."""

    counts: dict[str, int] = field(default_factory=dict)
    skipped: Counter[str] = field(default_factory=Counter)
    skipped_events: list[dict[str, str]] = field(default_factory=list)
    image_sources: Counter[str] = field(default_factory=Counter)
    decisions: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "records": sum(self.counts.values()),
            "counts": self.counts,
            "decisions": self.decisions,
            "skipped": dict(sorted(self.skipped.items())),
            "image_sources": dict(sorted(self.image_sources.items())),
        }


async def collect(
    out_dir: Path,
    *,
    kafka: KafkaSettings,
    decisions_topic: str,
    review_topic: str,
    review: ReviewSettings,
    fetch: FetchSettings,
    limits: ImageLimits,
    progress: Progress | None = None,
) -> CollectReport:
    """Read both topics to their end, resolve every latest decision's image, write the dataset.

    `review` bounds the reads (collect_*) and splits the records (test_fraction); `limits` are the
    detector's, so nothing is collected that the detector would refuse to decode."""
    report = CollectReport()
    decisions, contexts = await asyncio.to_thread(
        _read_topics, kafka, decisions_topic, review_topic, review.collect_timeout_s, report.skipped, progress
    )
    report.decisions = len(decisions)
    reader = InputRecordReader(kafka, review.collect_record_timeout_s)
    fetcher = URLFetcher(fetch)
    try:
        wanted = [contexts[e].source for e, d in decisions.items() if d.image is None and e in contexts]
        await reader.prefetch(wanted)
        resolver = ImageResolver(reader, fetcher, limits)
        records = await _resolve_all(resolver, decisions, contexts, review, report, progress)
    finally:
        await fetcher.close()
    manifest = {
        "format": "zoomguard.reviewed/1",
        "decisions_topic": decisions_topic,
        "review_topic": review_topic,
        "test_fraction": review.test_fraction,
        "labels": labels(records),
        **report.summary(),
        "skipped_events": report.skipped_events[:MAX_LISTED_SKIPS],
    }
    manifest.pop("counts")  # write_dataset adds the final counts
    report.counts = await asyncio.to_thread(write_dataset, out_dir, records, manifest)
    return report


def _read_topics(
    kafka: KafkaSettings,
    decisions_topic: str,
    review_topic: str,
    timeout: float,
    skipped: Counter[str],
    progress: Progress | None,
) -> tuple[dict[str, ReviewDecision], dict[str, ReviewContext]]:
    try:
        decisions = latest_decisions(
            _raw(
                read_to_end(
                    kafka,
                    decisions_topic,
                    timeout_s=timeout,
                    progress=_stage(progress, "decisions"),
                    timeout_setting="review.collect_timeout_s",
                )
            ),
            skipped,
        )
        contexts = review_contexts(
            _raw(
                read_to_end(
                    kafka,
                    review_topic,
                    timeout_s=timeout,
                    progress=_stage(progress, "review"),
                    timeout_setting="review.collect_timeout_s",
                )
            ),
            set(decisions),
            skipped,
        )
    except KafkaError as exc:
        raise UnavailableError(f"cannot read the review topics from {kafka.bootstrap_servers}: {exc!r}") from exc
    return decisions, contexts


def _raw(records: Iterable[Any]) -> Iterator[RawRecord]:
    for record in records:
        yield RawRecord(record.value, record.partition, record.offset)


def _stage(progress: Progress | None, stage: str) -> Callable[[int, int], None] | None:
    if progress is None:
        return None
    return lambda done, total: progress(stage, done, total)


async def _resolve_all(
    resolver: ImageResolver,
    decisions: dict[str, ReviewDecision],
    contexts: dict[str, ReviewContext],
    review: ReviewSettings,
    report: CollectReport,
    progress: Progress | None,
) -> list[TrainingRecord]:
    gate = asyncio.Semaphore(review.collect_concurrency)
    done = 0

    async def one(event_id: str) -> tuple[str, FoundImage | Miss, str]:
        nonlocal done
        async with gate:
            found, kind = await resolver.resolve(decisions[event_id], contexts.get(event_id))
        done += 1
        if progress is not None:
            progress("images", done, len(decisions))
        return event_id, found, kind

    results = await asyncio.gather(*(one(event_id) for event_id in sorted(decisions)))
    records: list[TrainingRecord] = []
    for event_id, found, kind in results:  # event_id order: deterministic manifests
        if isinstance(found, Miss):
            report.skipped[found.reason] += 1
            report.skipped_events.append({"event_id": event_id, "reason": found.reason, "detail": found.detail})
            continue
        report.image_sources[kind] += 1
        records.append(build_record(decisions[event_id], contexts.get(event_id), found, review.test_fraction))
    return records


class ImageResolver:
    """Tries a decision's image candidates in order; the first original image that decodes wins."""

    def __init__(self, records: InputRecordReader, fetcher: URLFetcher, limits: ImageLimits):
        self._records = records
        self._fetcher = fetcher
        self._limits = limits

    async def resolve(self, decision: ReviewDecision, context: ReviewContext | None) -> tuple[FoundImage | Miss, str]:
        """(image, candidate kind), or (the last candidate's Miss, "")."""
        candidates = image_candidates(decision, context)
        last = Miss("no_image_source", "no image in the decision and no review request for this event")
        for candidate in candidates:
            found = await self._load(candidate, decision.event_id)
            if isinstance(found, FoundImage) and (problem := check_digest(found, context)) is not None:
                found = Miss("image_mismatch", problem)
            if isinstance(found, FoundImage):
                return found, candidate.kind
            last = Miss(found.reason, f"{candidate.kind}: {found.detail}")
        return last, ""

    async def _load(self, candidate: ImageCandidate, event_id: str) -> FoundImage | Miss:
        if candidate.ref is not None:
            return await self._from_ref(candidate.ref)
        assert candidate.record is not None
        value = await self._records.get(candidate.record)
        if isinstance(value, Miss):
            return value
        try:
            event = event_from_record(value, event_id)
        except ValueError as exc:
            return Miss("input_record_invalid", str(exc))
        found = await self._from_ref(event.image)
        if isinstance(found, FoundImage):
            return FoundImage(found.data, found.sha256, found.width, found.height, event)
        return found

    async def _from_ref(self, ref: ImageRef) -> FoundImage | Miss:
        try:
            if ref.url is not None:
                data, _ = await self._fetcher.fetch(ref.url)
            else:
                data = ref.inline_bytes()
            decoded = await asyncio.to_thread(decode_image, data, self._limits)
        except BadInputError as exc:
            return Miss(exc.kind, str(exc))
        except ValueError as exc:  # invalid base64
            return Miss("invalid_image_data", str(exc))
        return FoundImage(data, decoded.sha256, decoded.width, decoded.height)


class InputRecordReader:
    """Original input records by coordinates (assign + seek), read on one thread, cached once read."""

    def __init__(self, kafka: KafkaSettings, timeout_s: float):
        self._kafka = kafka
        self._timeout = timeout_s
        self._cache: dict[SourceRecord, bytes | Miss | None] = {}
        self._lock = asyncio.Lock()

    async def prefetch(self, sources: Iterable[SourceRecord]) -> None:
        missing = sorted({s for s in sources if s not in self._cache}, key=lambda s: (s.topic, s.partition, s.offset))
        if not missing:
            return
        async with self._lock:
            try:
                read = await asyncio.to_thread(read_records, self._kafka, missing, self._timeout)
            except KafkaError as exc:
                raise UnavailableError(f"cannot read input records: {exc!r}") from exc
            self._cache.update(read)

    async def get(self, source: SourceRecord) -> bytes | Miss | None:
        if source not in self._cache:
            await self.prefetch([source])
        return self._cache[source]


def read_records(
    kafka: KafkaSettings, sources: list[SourceRecord], timeout_s: float
) -> dict[SourceRecord, bytes | Miss | None]:
    """The value at each coordinate, or a Miss (deleted by retention, compacted, past the end, no topic)."""
    consumer = KafkaConsumer(
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=kafka.max_partition_fetch_bytes,
        fetch_max_bytes=max(kafka.max_partition_fetch_bytes, 52428800),
        **kafka.common_config(),
    )
    found: dict[SourceRecord, bytes | Miss | None] = {}
    try:
        by_partition: dict[TopicPartition, list[int]] = {}
        for source in sources:
            by_partition.setdefault(TopicPartition(source.topic, source.partition), []).append(source.offset)
        for tp, offsets in sorted(by_partition.items()):
            for offset, value in _read_partition(consumer, tp, sorted(set(offsets)), timeout_s).items():
                found[SourceRecord(topic=tp.topic, partition=tp.partition, offset=offset)] = value
    finally:
        consumer.close()
    return found


def _read_partition(
    consumer: KafkaConsumer, tp: TopicPartition, offsets: list[int], timeout_s: float
) -> dict[int, bytes | Miss | None]:
    result: dict[int, bytes | Miss | None] = {}
    known = consumer.partitions_for_topic(tp.topic) or set()
    if tp.partition not in known:
        return {o: Miss("input_record_missing", f"no partition {tp.topic}/{tp.partition}") for o in offsets}
    consumer.assign([tp])
    first = consumer.beginning_offsets([tp]).get(tp) or 0
    pending = []
    for offset in offsets:
        if offset < first:
            result[offset] = Miss("input_record_missing", f"{tp.topic}/{tp.partition}@{offset} was deleted (retention)")
        else:
            pending.append(offset)
    while pending:
        target = pending[0]
        consumer.seek(tp, target)
        just_seeked = True
        deadline = time.monotonic() + timeout_s
        while pending and pending[0] == target:
            if time.monotonic() > deadline:
                result[target] = Miss(
                    "input_record_timeout", f"{tp.topic}/{tp.partition}@{target} not read in {timeout_s} s"
                )
                pending.pop(0)
                break
            records = poll_readable(consumer, timeout_ms=500).get(tp, [])
            if not records:
                highwater = consumer.highwater(tp)
                if highwater is not None and consumer.position(tp) >= highwater:
                    for offset in pending:
                        result[offset] = Miss(
                            "input_record_missing", f"{tp.topic}/{tp.partition}@{offset} is past the end"
                        )
                    pending.clear()
                continue
            if just_seeked and records[0].offset < target:  # out of range: the client reset to the start
                result[pending.pop(0)] = Miss(
                    "input_record_missing", f"{tp.topic}/{tp.partition}@{target} is past the end"
                )
                break
            just_seeked = False
            last = records[-1].offset
            values = {r.offset: r.value for r in records}
            while pending and pending[0] <= last:
                offset = pending.pop(0)
                result[offset] = (
                    values[offset]
                    if offset in values
                    else Miss("input_record_missing", f"{tp.topic}/{tp.partition}@{offset} is gone (compacted)")
                )
            if pending and pending[0] - last <= _SEEK_GAP:
                target = pending[0]  # keep reading on from here: no seek
                deadline = time.monotonic() + timeout_s
    return result
