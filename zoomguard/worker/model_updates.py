"""Follow `topics.model_updates`: switch the running detector to each promoted model version.

Why a separate reader: every worker must see every update, so it reads the topic by assignment, with no
consumer group (the worker group would hand each update to one worker only). On start it reads the
topic to its end and serves the newest update that loads, so a restarted worker serves the promoted
model; then it follows new ones. A bad or unloadable update is logged and ignored: the worker keeps
serving what it served, and never stops for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import PurePath
from typing import Protocol

import structlog
from pydantic import ValidationError

from zoomguard.detector.engines.base import Adapter, AdapterEngine, AdapterLoadError
from zoomguard.detector.zoomin import ServingModel, ZoomInDetector
from zoomguard.errors import ZoomguardError
from zoomguard.kafka.follow import sleep_or_stop
from zoomguard.schemas.review import ModelUpdate

log = structlog.get_logger("zoomguard.model_updates")

STARTUP_CANDIDATES = 5  # newest updates tried on start when the newest cannot be loaded
_RETRY_S = 2.0


class UpdateSource(Protocol):
    """Record values of the updates topic, in order; an empty list when nothing new arrived
    (`zoomguard.kafka.follow.TopicFollower` in the worker, a list in unit tests)."""

    async def read(self) -> list[bytes | None]: ...

    async def close(self) -> None: ...


def decode_update(value: bytes | None, max_bytes: int) -> ModelUpdate:
    """A ModelUpdate from a record value; ValueError with the reason when it is not one."""
    if value is None:
        raise ValueError("record has no value")
    if len(value) > max_bytes:
        raise ValueError(f"record is {len(value)} bytes; the limit is {max_bytes} (worker.max_model_update_bytes)")
    try:
        return ModelUpdate.model_validate_json(value)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'event'}: {err['msg']}"
            for err in exc.errors(include_url=False)[:5]
        )
        raise ValueError(f"invalid ModelUpdate: {problems}") from None


def newest_first(updates: Sequence[ModelUpdate]) -> list[ModelUpdate]:
    """By promoted_at, newest first; among equal times the one read last wins (topic order)."""
    indexed = sorted(enumerate(updates), key=lambda item: (item[1].promoted_at, item[0]), reverse=True)
    return [update for _, update in indexed]


def same_base(update_base: str, served_base: str) -> bool:
    """Whether an adapter trained on `update_base` applies to the served checkpoint. The trainer and the
    workers may see one checkpoint under different paths (or a path and a hub id): the last path
    component decides then."""
    if not update_base or update_base == served_base:
        return True
    return PurePath(update_base.rstrip("/")).name == PurePath(served_base.rstrip("/")).name


class ModelSwitcher:
    """Loads an update's adapter into the engine, then points the detector at it (atomic for detections)."""

    def __init__(self, detector: ZoomInDetector):
        self._detector = detector

    @property
    def version(self) -> str:
        return self._detector.model.version

    async def switch(self, update: ModelUpdate) -> None:
        engine = self._detector.engine
        current = self._detector.model
        if not isinstance(engine, AdapterEngine):
            raise AdapterLoadError(f"this engine ({type(engine).__name__}) cannot serve LoRA adapters")
        if not same_base(update.base_model, current.name):
            raise AdapterLoadError(
                f"update {update.model_version} is an adapter for {update.base_model}; "
                f"this worker serves {current.name}"
            )
        await engine.load_adapter(Adapter(name=update.model_version, path=update.adapter_path))
        info = current.model_copy(update={"version": update.model_version})
        self._detector.use(ServingModel(info=info, adapter=update.model_version, calibration=update.calibration))
        log.info(
            "model switched",
            previous_version=current.version,
            model_version=update.model_version,
            adapter=update.adapter_path,
            calibration=update.calibration.method,
        )


class ModelUpdateFollower:
    def __init__(
        self,
        source: UpdateSource,
        switcher: ModelSwitcher,
        *,
        max_bytes: int,
        catchup_s: float,
        idle_reads: int = 2,
    ):
        self._source = source
        self._switcher = switcher
        self._max_bytes = max_bytes
        self._catchup_s = catchup_s
        self._idle_reads = idle_reads
        self.applied: list[str] = []
        self.ignored: list[str] = []  # why each ignored record or update was ignored

    async def catch_up(self) -> None:
        """Read what the topic holds (until it stays quiet, or catchup_s) and serve the newest loadable update."""
        updates: list[ModelUpdate] = []
        deadline = time.monotonic() + self._catchup_s
        idle = 0
        while idle < self._idle_reads and time.monotonic() < deadline:
            try:
                batch = await self._source.read()
            except Exception as exc:  # broker trouble: the worker starts on what it has and follows later
                log.warning("cannot read model updates yet", error=str(exc))
                return
            idle = 0 if batch else idle + 1
            updates.extend(self._decoded(batch))
        for update in newest_first(updates)[:STARTUP_CANDIDATES]:
            if await self.apply(update):
                return

    async def follow(self, stop: asyncio.Event) -> None:
        """Apply each new update as it arrives, until `stop` is set. Never raises for a bad update."""
        while not stop.is_set():
            try:
                batch = await self._source.read()
            except Exception as exc:
                log.warning("reading model updates failed, retrying", error=str(exc), retry_in_s=_RETRY_S)
                await sleep_or_stop(stop, _RETRY_S)
                continue
            decoded = self._decoded(batch)
            if decoded:  # several at once: only the last one read is still meant to be served
                await self.apply(decoded[-1])

    async def apply(self, update: ModelUpdate) -> bool:
        """Switch to `update`; False (logged, worker unchanged) when it cannot be served."""
        if update.model_version == self._switcher.version:
            return True
        try:
            await self._switcher.switch(update)
        except ZoomguardError as exc:
            self._ignore(f"{update.model_version}: {exc}")
            return False
        except Exception as exc:  # a bug or an engine surprise must not stop the worker: keep the current model
            log.exception("model update failed unexpectedly", model_version=update.model_version)
            self._ignore(f"{update.model_version}: {type(exc).__name__}: {exc}")
            return False
        self.applied.append(update.model_version)
        return True

    def _decoded(self, batch: Sequence[bytes | None]) -> list[ModelUpdate]:
        updates = []
        for value in batch:
            try:
                updates.append(decode_update(value, self._max_bytes))
            except ValueError as exc:
                self._ignore(str(exc))
        return updates

    def _ignore(self, reason: str) -> None:
        self.ignored.append(reason)
        log.error(
            "model update ignored; still serving the current model", reason=reason, serving=self._switcher.version
        )
