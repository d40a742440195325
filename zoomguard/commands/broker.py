"""`zoomguard broker`: the embedded broker in the foreground, until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from types import FrameType

from zoomguard.commands.common import Command
from zoomguard.kafka.embedded_broker import EmbeddedBroker

_POLL_S = 0.1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=9092)
    parser.add_argument("--host", default="127.0.0.1")


def run(args: argparse.Namespace) -> int:
    return run_broker(args.host, args.port)


COMMAND = Command("broker", "the embedded Kafka-compatible broker (Tansu), in the foreground", add_arguments, run)


def run_broker(host: str, port: int) -> int:
    """Serve until SIGTERM/SIGINT (stop the broker, exit 0) or until the broker exits by itself (its status).

    The handlers only set a flag: stopping from inside a signal handler could interrupt `start` half-way, and
    the broker is stopped in one place below either way.
    """
    stopping: list[int] = []

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    broker = EmbeddedBroker(port=port, host=host)
    try:
        broker.start()
        print(f"embedded broker listening on {broker.bootstrap} (in memory; Ctrl-C to stop)", file=sys.stderr)
        while not stopping:
            status = broker.poll()
            if status is not None:
                print(f"zoomguard: the broker exited by itself with status {status}", file=sys.stderr)
                return status if status > 0 else 1
            time.sleep(_POLL_S)
        return 0
    finally:
        broker.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
