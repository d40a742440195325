"""`zoomguard bank feed`: reviewers' decisions into the known-content bank, as a service.

It follows the verdicts and review topics (by assignment, no group) to learn each event's PDQ hash, consumes
`topics.review_decisions` in its own consumer group, and publishes one bank entry per decision
(`review:<event_id>`). A polled batch is committed only after every entry it produced is acknowledged; a
decision whose event is not known yet is retried for `known.join_wait_s`, then logged and skipped (its
upload was never decoded by a worker, or its verdict is older than the topics keep).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from pydantic import ValidationError

from zoomguard.app.bank import ensure_bank_topic
from zoomguard.app.config import Settings
from zoomguard.errors import BadInputError
from zoomguard.kafka.clients import AsyncProducer, ConsumerThread, make_consumer, make_producer
from zoomguard.kafka.follow import TopicFollower, sleep_or_stop
from zoomguard.kafka.unreadable import SkippingPoll, UnreadableRecordsError
from zoomguard.known.bank import BankEntry, record_of
from zoomguard.known.feed import Hashed, JoinTable, review_entry
from zoomguard.known.hashing import pdq_of_bytes
from zoomguard.media.fetch import URLFetcher
from zoomguard.schemas.review import ReviewDecision

log = structlog.get_logger("zoomguard.bank_feed")


@dataclass
class FeedStats:
    published: int = 0
    unjoinable: int = 0
    invalid: int = 0
    unreadable: int = 0  # decisions the Kafka client could not read, skipped (logged with partition and offset)


_UNREADABLE_ATTEMPTS = 3


async def feed_bank(
    settings: Settings, stop: asyncio.Event, on_entry: Callable[[BankEntry], None] | None = None
) -> FeedStats:
    """Until `stop`: every review decision becomes a bank entry on `topics.known`."""
    topics, known = settings.topics, settings.known
    ensure_bank_topic(settings.kafka, topics.known)
    table = JoinTable(known.join_max_events)
    followers = [TopicFollower(settings.kafka, topic) for topic in (topics.verdicts, topics.review)]
    learning = [asyncio.create_task(_learn(f, table, stop), name="bank-feed-learn") for f in followers]
    group = settings.kafka.model_copy(update={"group_id": known.feed_group_id})
    consumer = ConsumerThread(make_consumer(group))
    producer = AsyncProducer(make_producer(settings.kafka))
    fetcher = URLFetcher(settings.fetch)
    stats = FeedStats()
    try:
        await consumer.call(lambda c: c.subscribe([topics.review_decisions]))
        log.info("bank feed started", decisions=topics.review_decisions, bank=topics.known)
        polls = SkippingPoll(_UNREADABLE_ATTEMPTS)  # a batch the client cannot decode: never crash-loop or stall
        while not stop.is_set():
            try:
                records = await consumer.call(lambda c: polls.poll(c, timeout_ms=500))
            except UnreadableRecordsError as exc:  # a CRC error can be a bad fetch: look again before skipping
                log.warning("review decisions unreadable; retrying", error=str(exc))
                await sleep_or_stop(stop, 1.0)
                continue
            stats.unreadable = polls.skipped
            if not records:
                continue
            pending: list[ReviewDecision] = []
            for record in records:
                try:
                    pending.append(ReviewDecision.model_validate_json(record.value or b""))
                except ValidationError as exc:
                    stats.invalid += 1
                    log.warning("review decision skipped: not a ReviewDecision", error=str(exc)[:300])
            deadline = time.monotonic() + known.join_wait_s
            while pending:
                waiting = []
                for decision in pending:
                    hashed = await _hash_of(decision, table, fetcher, settings)
                    if hashed is None:
                        waiting.append(decision)
                        continue
                    entry = review_entry(decision, hashed)
                    key, value = record_of(entry)
                    await producer.send(topics.known, key, value)
                    stats.published += 1
                    if on_entry is not None:
                        on_entry(entry)
                pending = waiting
                if pending and (time.monotonic() > deadline or stop.is_set()):
                    stats.unjoinable += len(pending)
                    for decision in pending:
                        log.warning("review decision not joined with an image hash", event_id=decision.event_id)
                    break
                if pending:
                    await sleep_or_stop(stop, 0.5)
            await consumer.call(lambda c: c.commit())  # every entry of this batch is acknowledged
        return stats
    finally:
        for task in learning:
            task.cancel()
        await asyncio.gather(*learning, return_exceptions=True)
        for follower in followers:
            await follower.close()
        await asyncio.to_thread(producer.close)
        consumer.shutdown()
        await fetcher.close()


async def _learn(follower: TopicFollower, table: JoinTable, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            for value in await follower.read():
                table.learn(value)
        except Exception as exc:  # broker trouble: keep trying; decisions wait for their joins meanwhile
            log.warning("reading verdicts for the bank feed failed, retrying", error=str(exc))
            await sleep_or_stop(stop, 2.0)


async def _hash_of(
    decision: ReviewDecision, table: JoinTable, fetcher: URLFetcher, settings: Settings
) -> Hashed | None:
    """The decision's own image when it has one (fetched under the worker's URL policy), else the join."""
    known = table.get(decision.event_id)
    if known is not None or decision.image is None:
        return known
    try:
        if decision.image.data_b64 is not None:
            data = base64.b64decode(decision.image.data_b64, validate=True)
        else:
            data, _ = await fetcher.fetch(decision.image.url or "")
        pdq = await asyncio.to_thread(pdq_of_bytes, data, settings.detector.limits, settings.known.hash_size)
    except (BadInputError, binascii.Error, ValueError) as exc:
        log.warning(
            "review decision's image unusable; joining by event instead", event_id=decision.event_id, error=str(exc)
        )
        return None
    return Hashed(pdq.hex, pdq.quality)
