"""Score a dataset's items as a stream: each image is read just before it is scored and dropped after, so at most
`concurrency` images are in memory (plus the reader's current batch), however large the dataset.

The reader's two passes are walked in step: the listed rows (already in memory: labels, boxes, no pixels) and
the images, pulled one at a time off the event loop only when a slot is free. Results keep the rows' order.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field

from tqdm import tqdm

from zoomguard.errors import BadInputError
from zoomguard.evaluation.scores import Prediction
from zoomguard.evaluation.sources.fingerprint import fingerprint, fingerprint_line
from zoomguard.evaluation.sources.items import EvalItem, Problem, Row

Score = Callable[[EvalItem, bytes, int], Awaitable["dict[str, Prediction] | Problem"]]
_END = object()


@dataclass
class StreamResult:
    predictions: dict[str, list[Prediction]]  # per stage, in row order
    problems: list[Problem] = field(default_factory=list)  # images that could not be read or decoded
    fingerprint: str = ""


async def score_stream(
    rows: Sequence[Row],
    images: Iterator[bytes | Problem],
    score: Score,
    stages: Sequence[str],
    *,
    concurrency: int,
    progress: bool = True,
) -> StreamResult:
    """Every item of `rows` scored on its image from `images` (one value per row, same order)."""
    outcomes: dict[int, dict[str, Prediction] | Problem] = {}
    lines: list[str] = []
    total = sum(1 for row in rows if isinstance(row, EvalItem))
    bar = tqdm(total=total, desc="eval", unit="img", file=sys.stderr, disable=not progress)
    limit = asyncio.Semaphore(concurrency)

    async def one(index: int, item: EvalItem, data: bytes) -> None:
        try:
            outcomes[index] = await score(item, data, index)
        finally:
            limit.release()
            bar.update(1)

    try:
        async with asyncio.TaskGroup() as group:
            for index, row in enumerate(rows):
                await limit.acquire()
                image = await asyncio.to_thread(next, images, _END)
                if image is _END:
                    raise BadInputError("the dataset changed while it was read: fewer images than rows listed")
                if isinstance(row, Problem):  # reported while listing; its image is not scored
                    limit.release()
                    continue
                if isinstance(image, Problem):
                    lines.append(fingerprint_line(row.item_id, row.label, None))
                    outcomes[index] = Problem(image.location, image.reason, image.phase, row.item_id)
                    limit.release()
                    bar.update(1)
                    continue
                assert isinstance(image, bytes)
                lines.append(fingerprint_line(row.item_id, row.label, len(image)))
                group.create_task(one(index, row, image))
            if await asyncio.to_thread(next, images, _END) is not _END:
                raise BadInputError("the dataset changed while it was read: more images than rows listed")
    except ExceptionGroup as failed:  # one image's failure (the engine down) ends the run with that error
        raise failed.exceptions[0] from None
    finally:
        bar.close()
        _close(images)
    result = StreamResult({stage: [] for stage in stages}, fingerprint=fingerprint(lines))
    for index in sorted(outcomes):
        outcome = outcomes[index]
        if isinstance(outcome, Problem):
            result.problems.append(outcome)
            continue
        for stage in stages:
            result.predictions[stage].append(outcome[stage])
    return result


def _close(images: Iterator[bytes | Problem]) -> None:
    close = getattr(images, "close", None)
    if close is not None:
        with contextlib.suppress(ValueError):  # still running in its thread after a cancellation
            close()
