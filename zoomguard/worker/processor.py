"""One input record -> its outputs: a verdict (and maybe a review request), or a dead letter.

Bad input becomes a dead letter with its reason and stage; an unavailable engine is retried with
backoff until it answers (or the worker stops and the event is left uncommitted for redelivery).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog
from pydantic import ValidationError

from zoomguard.detector.zoomin import ZoomInDetector
from zoomguard.errors import BadInputError, ImageDecodeError, ImageTooLargeError, UnavailableError
from zoomguard.evidence.reader import PixelReader
from zoomguard.evidence.settings import EvidenceSettings
from zoomguard.kafka.settings import TopicSettings
from zoomguard.kafka.unreadable import UnreadableRecordsError
from zoomguard.known.bank import MAX_NOTE_LENGTH, BankEntry, evidence_entry_id, record_of
from zoomguard.known.hashing import pdq_of_bytes
from zoomguard.known.memory import KnownBank
from zoomguard.known.settings import KnownContentSettings
from zoomguard.media.fetch import URLFetcher
from zoomguard.media.images import ImageHeader, decode_thumbnail, probe_image
from zoomguard.media.settings import ImageLimits
from zoomguard.schemas.detection import Detection, ErrorInfo
from zoomguard.schemas.events import DeadLetter, DeadLetterStage, ImageEvent, SourceRecord
from zoomguard.telemetry.bundle import Telemetry, disabled_telemetry
from zoomguard.worker.cache import VerdictCache
from zoomguard.worker.cascade import Cascade, EvidenceReader
from zoomguard.worker.routing import ReviewTaskBuilder, route
from zoomguard.worker.settings import WorkerSettings

log = structlog.get_logger("zoomguard.processor")

# W3C headers carried from the input record to every output; with a tracer the worker replaces traceparent and
# tracestate by its publish span's context (worker/loop.py), so only baggage arrives unchanged.
PROPAGATED_HEADERS = ("traceparent", "tracestate", "baggage")
DEAD_LETTER_HEADROOM = 64 * 1024  # record framing, key and headers on top of the JSON value


@dataclass(frozen=True)
class InputRecord:
    """The parts of a Kafka record the processor uses (kept free of kafka-python types)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True)
class Output:
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass(frozen=True)
class Outcome:
    kind: str  # "verdict" or "dead_letter"
    outputs: list[Output]
    event_id: str | None
    decision: str | None = None
    decision_source: str | None = None
    evidence_kinds: tuple[str, ...] = ()
    review_reason: str | None = None
    cache_hit: bool = False
    error_kind: str | None = None
    submitted_at: datetime | None = None


class InternalError(BadInputError):
    """An unexpected error while processing one event (a bug); the record is kept in the DLQ for replay."""

    kind = "internal_error"


class _DeadLetter(Exception):
    def __init__(self, stage: DeadLetterStage, error: BadInputError | ValueError, attempts: int = 1):
        super().__init__(str(error))
        self.stage = stage
        self.kind = getattr(error, "kind", "invalid_event")
        self.attempts = attempts


class EventProcessor:
    def __init__(
        self,
        detector: ZoomInDetector,
        fetcher: URLFetcher,
        cache: VerdictCache,
        worker: WorkerSettings,
        topics: TopicSettings,
        review_task: ReviewTaskBuilder,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        telemetry: Telemetry | None = None,
        max_output_bytes: int = 4 * 1024 * 1024,
        image_limits: ImageLimits | None = None,
        read_evidence: EvidenceReader | None = None,
        evidence: EvidenceSettings | None = None,
        read_pixels: PixelReader | None = None,
        bank: KnownBank | None = None,
        known: KnownContentSettings | None = None,
    ):
        self._limits = image_limits or ImageLimits()
        self._telemetry = telemetry or disabled_telemetry()
        self._tracer = self._telemetry.tracer
        self._detector = detector
        self._known = known or KnownContentSettings()
        self._cascade = Cascade(
            detector,
            read_evidence,
            evidence or EvidenceSettings(),
            self._limits,
            self._tracer,
            read_pixels=read_pixels,
            bank=bank,
            known=known,
        )
        self._fetcher = fetcher
        self._cache = cache
        self._worker = worker
        self._topics = topics
        self._review_task = review_task
        self._sleep = sleep
        self._max_output_bytes = max_output_bytes
        self.engine_retries = 0

    @property
    def detector(self) -> ZoomInDetector:
        """The detector this processor runs (the model-update follower switches what it serves)."""
        return self._detector

    async def process(self, record: InputRecord) -> Outcome:
        source = SourceRecord(topic=record.topic, partition=record.partition, offset=record.offset)
        headers = [(k, v) for k, v in record.headers if k in PROPAGATED_HEADERS]
        parsed: list[ImageEvent] = []  # filled once the event is readable, for the dead letter's event_id
        try:
            return await self._process(record, source, headers, parsed)
        except _DeadLetter as failure:
            return self._dead_letter(record, source, parsed, failure, headers)
        except Exception as exc:  # a bug must not stall the partition: park the record in the DLQ for replay
            log.exception("internal error", event_id=parsed[0].event_id if parsed else None)
            internal = _DeadLetter("detect", InternalError(f"{type(exc).__name__}: {exc}"))
            return self._dead_letter(record, source, parsed, internal, headers)

    async def _process(
        self, record: InputRecord, source: SourceRecord, headers: list[tuple[str, bytes]], parsed: list[ImageEvent]
    ) -> Outcome:
        event = self._parse(record)
        parsed.append(event)
        structlog.contextvars.bind_contextvars(event_id=event.event_id, model_version=self._detector.model.version)
        data, attempts = await self._image_bytes(event)
        detection, cache_hit = await self._detect(data, event.event_id, attempts)
        if not cache_hit:
            self._record_stages(detection)
        with self._tracer.start_as_current_span("route") as span:
            url = event.image.url
            review_image = url if url is not None else await self._thumbnail_uri(data)
            routed = route(
                detection,
                event,
                source,
                audit_rate=self._worker.audit_rate,
                review_image=review_image,
                review_task=self._review_task,
            )
            span.set_attributes(
                {"zoomguard.decision": detection.decision, "zoomguard.review": routed.review is not None}
            )
        key = event.event_id.encode()
        verdict = routed.verdict.model_copy(update={"cache_hit": cache_hit})
        outputs = [Output(self._topics.verdicts, key, verdict.model_dump_json().encode(), headers)]
        if routed.review is not None:
            review = routed.review.model_copy(update={"verdict": verdict})
            outputs.append(Output(self._topics.review, key, review.model_dump_json().encode(), headers))
        if self._known.from_evidence and detection.decision_source == "evidence" and not cache_hit:
            outputs.extend(await self._evidence_entry(event, detection, data))
        return Outcome(
            kind="verdict",
            outputs=outputs,
            event_id=event.event_id,
            decision=detection.decision,
            decision_source=detection.decision_source,
            evidence_kinds=tuple(sorted({item.kind for item in detection.evidence})),
            review_reason=routed.review.reason if routed.review else None,
            cache_hit=cache_hit,
            submitted_at=event.submitted_at,
        )

    async def _evidence_entry(self, event: ImageEvent, detection: Detection, data: bytes) -> list[Output]:
        """The bank entry of an upload its marks decided, so a copy with the marks stripped is decided the
        same way; committed with the verdict. Hashed here when the bytes decided before any decoding."""
        pdq, quality = detection.image.pdq, detection.image.pdq_quality
        if pdq is None or quality is None:
            try:
                hashed = await asyncio.to_thread(pdq_of_bytes, data, self._limits, self._known.hash_size)
            except BadInputError:
                return []
            pdq, quality = hashed.hex, hashed.quality
        if quality < self._known.min_quality:  # too flat to ever match: not worth an entry
            return []
        cited = next((item for item in detection.evidence if item.claim == "ai_generated" and item.valid), None)
        entry = BankEntry(
            entry_id=evidence_entry_id(event.event_id),
            pdq=pdq,
            quality=quality,
            label="ai_generated",
            source="evidence",
            decided_by=f"{cited.kind}: {cited.source}"[:200] if cited else None,
            decided_at=datetime.now(UTC),
            event_id=event.event_id,
            note=detection.explanation[:MAX_NOTE_LENGTH] or None,
        )
        key, value = record_of(entry)
        return [Output(self._topics.known, key, value, [])]

    def _record_stages(self, detection: Detection) -> None:
        timings = detection.timings_ms
        for stage, ms in (
            ("evidence", timings.evidence_ms),
            ("known_content", timings.known_content_ms),
            ("decode", timings.decode_ms),
            ("locate", timings.locate_ms),
            ("crop", timings.crop_ms),
            ("examine", timings.examine_ms),
        ):
            if ms:
                self._telemetry.metrics.stage(stage, ms / 1000.0)

    def _parse(self, record: InputRecord) -> ImageEvent:
        value = record.value
        if value is None:
            raise _DeadLetter("parse", ValueError("record has no value"))
        if len(value) > self._worker.max_event_bytes:
            raise _DeadLetter(
                "parse", ValueError(f"record is {len(value)} bytes; the limit is {self._worker.max_event_bytes}")
            )
        try:
            return ImageEvent.model_validate_json(value)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'event'}: {err['msg']}"
                for err in exc.errors(include_url=False)[:5]
            )
            raise _DeadLetter("parse", ValueError(f"invalid ImageEvent: {problems}")) from None

    async def _image_bytes(self, event: ImageEvent) -> tuple[bytes, int]:
        if event.image.data_b64 is not None:
            try:
                return event.image.inline_bytes(), 1
            except ValueError as exc:
                raise _DeadLetter("parse", exc) from None
        assert event.image.url is not None
        started = time.perf_counter()
        with self._tracer.start_as_current_span("fetch") as span:
            try:
                body, attempts = await self._fetcher.fetch(event.image.url)
            except BadInputError as exc:
                span.set_attribute("error.type", exc.kind)
                raise _DeadLetter("fetch", exc, attempts=getattr(exc, "attempts", 1)) from None
            span.set_attributes({"zoomguard.fetch.attempts": attempts, "zoomguard.fetch.bytes": len(body)})
        self._telemetry.metrics.stage("fetch", time.perf_counter() - started)
        return body, attempts

    async def _detect(self, data: bytes, event_id: str, attempts: int) -> tuple[Detection, bool]:
        sha256 = hashlib.sha256(data).hexdigest()
        try:
            return await self._cache.get_or_detect(
                sha256, self._detector.model.version, lambda: self._detect_with_retry(data, event_id)
            )
        except (ImageDecodeError, ImageTooLargeError) as exc:
            raise _DeadLetter("decode", exc, attempts) from None
        except BadInputError as exc:
            raise _DeadLetter("detect", exc, attempts) from None

    async def _detect_with_retry(self, data: bytes, event_id: str) -> Detection:
        """Bad input fails at once; an unavailable engine is retried with capped exponential backoff."""
        delay = self._worker.retry_initial_s
        while True:
            try:
                # unique per attempt: a redelivered event may overlap its first run in the engine
                detection = await self._cascade.detect_bytes(data, request_id=f"{event_id}:{uuid.uuid4().hex[:12]}")
            except UnavailableError as exc:
                self._telemetry.health.engine_failed()
                self._telemetry.metrics.events.add(1, {"outcome": "retry"})
                self.engine_retries += 1
                log.warning("engine unavailable, retrying", event_id=event_id, error=str(exc), retry_in_s=delay)
                await self._sleep(delay)
                delay = min(delay * 2, self._worker.retry_max_s)
                continue
            self._telemetry.health.engine_answered()
            return detection

    def _dead_letter(
        self,
        record: InputRecord,
        source: SourceRecord,
        parsed: list[ImageEvent],
        failure: _DeadLetter,
        headers: list[tuple[str, bytes]],
    ) -> Outcome:
        event_id = parsed[0].event_id if parsed else None
        value = record.value or b""
        letter = DeadLetter(
            event_id=event_id,
            original_key_b64=base64.b64encode(record.key).decode() if record.key is not None else None,
            original_value_b64=base64.b64encode(value).decode(),
            original_value_bytes=len(value),
            original_value_sha256=hashlib.sha256(value).hexdigest(),
            source=source,
            error=ErrorInfo(kind=failure.kind, message=str(failure)[:2000]),
            stage=failure.stage,
            attempts=failure.attempts,
            failed_at=datetime.now(UTC),
        )
        payload = letter.model_dump_json().encode()
        if len(payload) > self._max_output_bytes - DEAD_LETTER_HEADROOM:
            # Base64 grows the value by 4/3: a dead letter that cannot be published would be retried forever
            # and stall the partition. Keep the pointer (source, size, sha256) and drop the bytes instead.
            letter = letter.model_copy(update={"original_value_b64": None, "original_omitted": "too_large"})
            payload = letter.model_dump_json().encode()
        log.info("dead letter", event_id=event_id, stage=failure.stage, kind=failure.kind, error=str(failure))
        key = event_id.encode() if event_id else record.key
        output = Output(self._topics.dead_letter, key, payload, headers)
        return Outcome(kind="dead_letter", outputs=[output], event_id=event_id, error_kind=failure.kind)

    def unreadable(self, topic: str, partition: int, offset: int, error: str) -> Outcome:
        """A record the Kafka client cannot read (corrupt batch, unknown codec): a dead letter that points at it.

        Its bytes never reached us, so the letter carries the coordinates only; replay from the source."""
        letter = DeadLetter(
            event_id=None,
            original_key_b64=None,
            original_value_b64=None,
            original_omitted="unreadable",
            source=SourceRecord(topic=topic, partition=partition, offset=offset),
            error=ErrorInfo(kind=UnreadableRecordsError.kind, message=error[:2000]),
            stage="consume",
            attempts=1,
            failed_at=datetime.now(UTC),
        )
        output = Output(self._topics.dead_letter, None, letter.model_dump_json().encode())
        return Outcome(kind="dead_letter", outputs=[output], event_id=None, error_kind=UnreadableRecordsError.kind)

    async def _thumbnail_uri(self, data: bytes) -> str:
        """Inline images reach reviewers as a JPEG thumbnail: boxes are in percent, so they still fit.
        Decoded again (JPEGs at a reduced scale) within the detector's pixel budget and the same limits."""
        header = await asyncio.to_thread(probe_image, data, self._limits)
        lease = await self._detector.pixel_budget.acquire(header.pixels)
        try:
            return await asyncio.to_thread(self._encode_thumbnail, data, header)
        finally:
            lease.release()

    def _encode_thumbnail(self, data: bytes, header: ImageHeader) -> str:
        image = decode_thumbnail(data, self._worker.review_thumbnail_side, self._limits, probed=header)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=85)
        return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
