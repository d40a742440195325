"""`zoomguard run`: the moderation worker, until SIGTERM or SIGINT (then drain, commit, exit 0)."""

from __future__ import annotations

import asyncio
import signal

import structlog

from zoomguard.app.config import Settings
from zoomguard.app.worker_service import run_service

log = structlog.get_logger("zoomguard.run")


async def run_worker(settings: Settings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _request_stop, stop, signum)
    stats = await run_service(settings, stop)
    log.info("exiting", handled=stats.handled, outcomes=dict(stats.outcomes))
    return 0


def _request_stop(stop: asyncio.Event, signum: int) -> None:
    log.info("stop requested", signal=signal.Signals(signum).name)
    stop.set()
