"""A durable spool between Label Studio's webhook and Kafka: accept in milliseconds, publish when the broker can.

Label Studio posts each webhook once, waits `WEBHOOK_TIMEOUT` (1 s by default) and never retries, so the
webhook cannot wait for broker acks. `DecisionSpool.write` puts one request's decisions in one file (temp
file, fsync, rename, fsync of the directory) before the webhook answers 200; `SpoolFlusher` publishes the
files oldest first and deletes one only after every decision in it was acknowledged (at least once: a
decision whose ack was lost is sent again, harmless because the latest decision per event_id wins). A file
that cannot be read back is moved to `rejected/` with a log line, never deleted. One process owns a
directory (an flock), so the counts kept in memory are the truth and no second process publishes or
rejects files another one is writing.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import structlog
from pydantic import ValidationError

from zoomguard.errors import ConfigError, ZoomguardError
from zoomguard.schemas.review import ReviewDecision

log = structlog.get_logger("zoomguard.review.spool")

SPOOL_FORMAT = "zoomguard.webhook-spool"
SPOOL_VERSION = 1
REJECTED_DIR = "rejected"
LOCK_FILE = ".lock"
TEMP_PREFIX = ".tmp-"
_NAME = re.compile(r"^(\d{20})\.json$")
_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


class SpoolRefused(ZoomguardError):
    """The spool could not take a request; `status` and `error` are what the webhook answers."""

    kind = "unavailable"

    def __init__(self, status: int, error: str, message: str):
        super().__init__(message)
        self.status = status
        self.error = error


class CorruptSpoolFile(Exception):
    """A spool file that can never be published as it is (truncated, not ours, invalid decisions)."""


# ---------------------------------------------------------------- the file format (pure)


def encode_batch(decisions: Sequence[ReviewDecision], accepted_at: datetime) -> bytes:
    """One accepted request as a self-describing JSON document."""
    if not decisions:
        raise ValueError("a spool file holds at least one decision")
    document = {
        "format": SPOOL_FORMAT,
        "version": SPOOL_VERSION,
        "accepted_at": accepted_at.isoformat(),
        "decisions": [d.model_dump(mode="json") for d in decisions],
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def decode_batch(data: bytes) -> list[ReviewDecision]:
    """The decisions of a spool file, in order; CorruptSpoolFile says why they cannot be read."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptSpoolFile(f"not JSON ({exc})"[:300]) from None
    if not isinstance(document, dict) or document.get("format") != SPOOL_FORMAT:
        raise CorruptSpoolFile("not a webhook spool file")
    if document.get("version") != SPOOL_VERSION:
        raise CorruptSpoolFile(f"unknown spool version {str(document.get('version'))[:20]}")
    items = document.get("decisions")
    if not isinstance(items, list) or not items:
        raise CorruptSpoolFile("no decisions")
    try:
        return [ReviewDecision.model_validate(item) for item in items]
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(map(str, first["loc"]))
        detail = f"invalid decision ({exc.error_count()} errors; {where}: {first['msg']})"
        raise CorruptSpoolFile(detail[:300]) from None


def spool_name(stamp_ns: int) -> str:
    """Names sort like their stamps, so a directory listing is the publishing order."""
    return f"{stamp_ns:020d}.json"


def _stamp(name: str) -> int | None:
    match = _NAME.match(name)
    return int(match.group(1)) if match else None


def _refusal(exc: OSError, directory: Path) -> SpoolRefused:
    reason = exc.strerror or str(exc)
    if exc.errno in _DISK_FULL:
        return SpoolRefused(507, "disk_full", f"no space left for the webhook spool in {directory} ({reason})")
    return SpoolRefused(503, "spool_unwritable", f"cannot write the webhook spool in {directory} ({reason})")


# ---------------------------------------------------------------- the directory


@dataclass(frozen=True)
class SpoolDepth:
    """What waits for the broker: spooled requests, their bytes, the oldest one's age; and files set aside."""

    files: int
    bytes: int
    oldest_age_s: float | None
    rejected: int

    def as_dict(self) -> dict[str, Any]:
        age = None if self.oldest_age_s is None else round(self.oldest_age_s, 3)
        return {"files": self.files, "bytes": self.bytes, "oldest_age_s": age, "rejected": self.rejected}


class DecisionSpool:
    """A directory of accepted requests, one file each. `open()` it; `write` is safe from many threads."""

    def __init__(
        self, directory: Path | str, *, max_files: int, max_bytes: int, clock_ns: Callable[[], int] = time.time_ns
    ):
        self.directory = Path(directory)
        self.rejected_dir = self.directory / REJECTED_DIR
        self._max_files = max_files
        self._max_bytes = max_bytes
        self._clock_ns = clock_ns
        self._lock = threading.Lock()
        self._sizes: dict[str, int] = {}  # spooled (or being written) file name -> bytes
        self._bytes = 0
        self._rejected = 0
        self._last_stamp = 0
        self._lock_fd: int | None = None

    @classmethod
    def open(
        cls, directory: Path | str, *, max_files: int, max_bytes: int, clock_ns: Callable[[], int] = time.time_ns
    ) -> DecisionSpool:
        spool = cls(directory, max_files=max_files, max_bytes=max_bytes, clock_ns=clock_ns)
        spool._open()
        return spool

    def _open(self) -> None:
        """Create and lock the directory, count what a previous run left, set aside its interrupted writes."""
        try:
            self.rejected_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise ConfigError(
                f"review.webhook_spool_dir {self.directory} is not usable ({exc.strerror or exc}): "
                "it must be a writable directory (in Kubernetes a persistent volume)"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ConfigError(
                f"review.webhook_spool_dir {self.directory} is in use by another process: "
                "give each webhook process its own spool directory"
            ) from None
        self._lock_fd = fd
        try:
            unknown = self._scan()
        except OSError as exc:
            self.close()
            raise ConfigError(f"review.webhook_spool_dir {self.directory} cannot be read ({exc})") from None
        depth = self.depth()
        log.info("spool opened", dir=str(self.directory), files=depth.files, bytes=depth.bytes, rejected=depth.rejected)
        if unknown:
            log.warning("spool directory holds files it does not own", dir=str(self.directory), names=unknown[:20])

    def _scan(self) -> list[str]:
        """Count what a previous run left; returns the names that are not the spool's."""
        unknown: list[str] = []
        for entry in sorted(os.scandir(self.directory), key=lambda e: e.name):
            stamp = _stamp(entry.name)
            if entry.name.startswith(TEMP_PREFIX) and entry.is_file():
                # never answered 200 (that comes after the rename), but kept for a person to look at
                self._set_aside(Path(entry.path), "interrupted write (a temp file left by a previous run)")
            elif stamp is not None and entry.is_file():
                self._sizes[entry.name] = entry.stat().st_size
                self._bytes += self._sizes[entry.name]
                self._last_stamp = max(self._last_stamp, stamp)
            elif entry.name not in (LOCK_FILE, REJECTED_DIR):
                unknown.append(entry.name)
        with self._lock:
            self._rejected = sum(1 for _ in self.rejected_dir.iterdir())
        return unknown

    def close(self) -> None:
        """Release the directory (what is spooled stays for the next run)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = None

    def write(self, decisions: Sequence[ReviewDecision]) -> Path:
        """Store one request's decisions durably; returns once they are on disk, or raises SpoolRefused."""
        data = encode_batch(decisions, datetime.now(UTC))
        with self._lock:
            self._check_room(len(data))
            stamp = max(self._clock_ns(), self._last_stamp + 1)  # strictly increasing even if the clock steps back
            self._last_stamp = stamp
            name = spool_name(stamp)
            self._sizes[name] = len(data)  # reserved: concurrent writers count it
            self._bytes += len(data)
        try:
            self._write_atomically(name, data)
        except OSError as exc:
            self._forget(name)
            log.error("spool write failed", dir=str(self.directory), error=exc.strerror or str(exc), errno=exc.errno)
            raise _refusal(exc, self.directory) from exc
        log.debug("spool wrote", file=name, decisions=len(decisions), bytes=len(data))
        return self.directory / name

    def _check_room(self, size: int) -> None:
        files, total = len(self._sizes), self._bytes
        if files + 1 > self._max_files or total + size > self._max_bytes:
            log.warning("spool full", files=files, bytes=total, max_files=self._max_files, max_bytes=self._max_bytes)
            raise SpoolRefused(
                507,
                "spool_full",
                f"the webhook spool is full ({files} requests, {total} bytes; review.webhook_spool_max_files="
                f"{self._max_files}, review.webhook_spool_max_bytes={self._max_bytes}) because the broker has not "
                "acknowledged for a while; this decision was not accepted: import a project export once the "
                "broker is back",
            )

    def _write_atomically(self, name: str, data: bytes) -> None:
        temp = self.directory / f"{TEMP_PREFIX}{name}"
        final = self.directory / name
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(temp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise
        try:
            _fsync_directory(self.directory)
        except OSError:
            with contextlib.suppress(OSError):
                final.unlink()  # refused means not taken: the flusher must not publish it either
            raise

    def pending(self) -> list[Path]:
        """Spooled files, oldest first."""
        names = sorted(entry.name for entry in os.scandir(self.directory) if _NAME.match(entry.name))
        return [self.directory / name for name in names]

    def load(self, path: Path) -> list[ReviewDecision]:
        """The decisions in one spooled file; CorruptSpoolFile when it can never be published."""
        try:
            data = path.read_bytes()
        except PermissionError as exc:
            raise CorruptSpoolFile(f"unreadable ({exc.strerror})") from None
        return decode_batch(data)

    def remove(self, path: Path) -> None:
        """After every decision in it was acknowledged."""
        path.unlink(missing_ok=True)
        self._forget(path.name)
        _fsync_directory(self.directory)  # else a crash could bring it back (published twice: harmless)

    def reject(self, path: Path, reason: str) -> Path:
        """Move a file that cannot be published to rejected/, with a log line, so it is neither retried nor lost."""
        target = self._set_aside(path, reason)
        self._forget(path.name)
        return target

    def _set_aside(self, path: Path, reason: str) -> Path:
        target = self.rejected_dir / path.name.removeprefix(TEMP_PREFIX)
        if target.exists():
            target = target.with_name(f"{target.stem}-{time.time_ns()}{target.suffix}")
        os.replace(path, target)
        _fsync_directory(self.rejected_dir)
        _fsync_directory(self.directory)
        with self._lock:
            self._rejected += 1
        log.error("spool file set aside", file=path.name, reason=reason, moved_to=str(target))
        return target

    def _forget(self, name: str) -> None:
        with self._lock:
            self._bytes -= self._sizes.pop(name, 0)

    def depth(self) -> SpoolDepth:
        with self._lock:
            oldest = min(self._sizes, default=None)
            files, total, rejected = len(self._sizes), self._bytes, self._rejected
        stamp = _stamp(oldest) if oldest is not None else None
        age = None if stamp is None else max(0.0, (self._clock_ns() - stamp) / 1e9)
        return SpoolDepth(files=files, bytes=total, oldest_age_s=age, rejected=rejected)


def _fsync_directory(directory: Path) -> None:
    """Makes a rename or unlink in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno != errno.EINVAL:  # a filesystem that cannot sync directories: nothing more to do
            raise
    finally:
        os.close(fd)


# ---------------------------------------------------------------- the flusher


class DecisionSink(Protocol):
    """Where the flusher publishes: `publish` returns once the broker acknowledged, else raises."""

    def publish(self, decisions: list[ReviewDecision]) -> None: ...

    def abort(self) -> None: ...

    def close(self) -> None: ...


Connect = Callable[[], DecisionSink]


def backoff_delay(failures: int, initial_s: float, max_s: float) -> float:
    """The wait after `failures` (>= 1) consecutive failed flushes: `initial_s`, doubled each time, capped."""
    return min(max_s, initial_s * 2.0 ** min(max(failures - 1, 0), 60))


class SpoolFlusher:
    """Publishes the spool oldest first in a thread; after an error it drops its sink and backs off.

    A new sink (a new Kafka producer) is made after every error: a producer that saw the broker go away
    may never recover (kafka-python's idempotent producer fails for good after a broker restart).
    """

    def __init__(
        self,
        spool: DecisionSpool,
        connect: Connect,
        *,
        backoff_s: float,
        backoff_max_s: float,
        stop_flush_s: float = 0.0,
    ):
        self._spool = spool
        self._connect = connect
        self._backoff_s = backoff_s
        self._backoff_max_s = backoff_max_s
        self._stop_flush_s = stop_flush_s
        self._sink: DecisionSink | None = None
        self._progress: tuple[str, int] = ("", 0)  # decisions of that file already acknowledged
        self._wakeup = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failures = 0  # consecutive
        self.published = 0
        self.last_error: str | None = None
        self.last_published_at: datetime | None = None

    def wake(self) -> None:
        """Something was spooled: publish now instead of at the next rescan."""
        self._wakeup.set()

    def flush(self, keep_going: Callable[[], bool] = lambda: True) -> bool:
        """Publish spooled files until none is left (or `keep_going` says stop); False after an error."""
        try:
            for path in self._spool.pending():
                if not keep_going():
                    return True
                if not self._publish_file(path, keep_going):
                    return True
        except Exception as exc:  # the flusher must outlive any failure; the file stays spooled
            self._failed(exc)
            return False
        self._recovered()
        return True

    def _publish_file(self, path: Path, keep_going: Callable[[], bool]) -> bool:
        """True once the file is published and removed (or set aside); False when told to stop first."""
        try:
            decisions = self._spool.load(path)
        except FileNotFoundError:
            return True
        except CorruptSpoolFile as exc:
            self._spool.reject(path, str(exc))
            return True
        done = self._progress[1] if self._progress[0] == path.name else 0
        for index in range(done, len(decisions)):
            if not keep_going():
                return False
            if self._sink is None:
                self._sink = self._connect()
            self._sink.publish([decisions[index]])  # one at a time: an error resends only what was not acked
            self._progress = (path.name, index + 1)
            self.published += 1
        self._recovered()  # before the file goes: whoever sees it gone sees a healthy flusher
        self._spool.remove(path)
        self.last_published_at = datetime.now(UTC)
        log.info("spool file published", file=path.name, event_ids=[d.event_id for d in decisions])
        return True

    def _recovered(self) -> None:
        if self.failures:
            log.info("spool flush recovered", after_failures=self.failures)
        self.failures = 0
        self.last_error = None

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}"[:300]
        if self._sink is not None:
            sink, self._sink = self._sink, None
            with contextlib.suppress(Exception):
                sink.abort()

    # -------------------------------------------------------- the thread

    def start(self) -> SpoolFlusher:
        self._thread = threading.Thread(target=self._run, name="review-spool-flusher", daemon=True)
        self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wakeup.clear()
            if self.flush(keep_going=lambda: not self._stop.is_set()):
                self._wakeup.wait(self._backoff_max_s)  # a write wakes it; the timeout is a rescan
                continue
            delay = backoff_delay(self.failures, self._backoff_s, self._backoff_max_s)
            depth = self._spool.depth()
            log.warning(
                "spool flush failed",
                error=self.last_error,
                failures=self.failures,
                retry_in_s=round(delay, 3),
                spooled_files=depth.files,
            )
            self._stop.wait(delay)  # only stopping cuts the backoff short: new writes must not hammer the broker
        self._final_flush()
        self._close_sink()

    def _final_flush(self) -> None:
        if self._stop_flush_s <= 0 or self.failures or not self._spool.pending():
            return  # nothing to do, or the broker is failing: the files wait for the next start
        deadline = time.monotonic() + self._stop_flush_s
        self.flush(keep_going=lambda: time.monotonic() < deadline)

    def _close_sink(self) -> None:
        if self._sink is not None:
            sink, self._sink = self._sink, None
            try:
                sink.close()
            except Exception:  # closing at exit: what is spooled stays spooled
                with contextlib.suppress(Exception):
                    sink.abort()

    def stop(self) -> None:
        """Stop after the current publish; publish the rest for up to `stop_flush_s` when the broker is fine."""
        self._stop.set()
        self._wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout=self._stop_flush_s + 5.0)
            if self._thread.is_alive():
                log.warning("spool flusher still busy at exit", spooled_files=self._spool.depth().files)
        left = self._spool.depth()
        if left.files:
            log.info("spool left for the next start", files=left.files, bytes=left.bytes)

    def status(self) -> dict[str, Any]:
        """For /health: is it running, how many decisions it published, and the last error while failing."""
        published_at = self.last_published_at.isoformat() if self.last_published_at else None
        return {
            "running": self.alive,
            "published": self.published,
            "last_published_at": published_at,
            "failures": self.failures,
            "last_error": self.last_error,
        }
