"""The `zoomguard` command: parse arguments, load settings, dispatch to a subcommand."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zoomguard.errors import ConfigError, ZoomguardError


def _quiet_engine_logs() -> None:
    """vLLM logs to stdout by default, which would corrupt JSON output: send its logs to stderr."""
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zoomguard", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    detect = sub.add_parser("detect", help="run ZoomIn on image files and print one result per input")
    detect.add_argument("paths", nargs="+", help="image files")
    _engine_args(detect)
    detect.add_argument("--json", action="store_true", help="one JSON line per input, in input order")
    detect.add_argument("--annotate", metavar="OUTDIR", type=Path, help="write each image with its boxes (PNG)")
    detect.add_argument("--concurrency", type=int, default=64, help="images in flight at once (default 64)")
    detect.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")

    run = sub.add_parser("run", help="the Kafka moderation worker (until SIGTERM: drain, commit, exit 0)")
    run.add_argument("--bootstrap-servers", help="Kafka host:port[,host:port...]")
    run.add_argument("--group-id", help="consumer group (default zoomguard)")
    _engine_args(run)
    run.add_argument("--log-level", help="DEBUG, INFO, WARNING, ERROR (default: telemetry.log_level)")
    run.add_argument("--log-json", action="store_true", default=None, help="JSON logs even on a terminal")

    broker = sub.add_parser("broker", help="the embedded Kafka-compatible broker (Tansu), in the foreground")
    broker.add_argument("--port", type=int, default=9092)
    broker.add_argument("--host", default="127.0.0.1")

    demo = sub.add_parser("demo", help="embedded broker + tiny model + sample images: the whole pipeline")
    demo.add_argument("--out", type=Path, default=Path("demo-out"), help="output folder (default demo-out)")
    demo.add_argument("--inline", type=int, default=8, help="images sent inline")
    demo.add_argument("--by-url", type=int, default=4, help="images sent by URL")

    bench = sub.add_parser("bench", help="throughput, latency, prefix reuse and memory, side by side in one run")
    bench.add_argument("--quick", action="store_true", help="small counts: under 5 minutes on the tiny model on CPU")
    bench.add_argument("--out", type=Path, default=Path("bench-out/report.json"), help="JSON report (+ .md, .png)")
    bench.add_argument("--model", help="checkpoint or hub id (default: the tiny offline model, built if needed)")
    bench.add_argument("--server", action="append", metavar="URL", help="measure vLLM servers instead (repeatable)")
    bench.add_argument("--images", type=int, help="images for the ceiling, pipeline and latency runs")
    bench.add_argument("--image-size", default="320x240", help="generated image size WxH (default 320x240)")
    bench.add_argument("--max-in-flight", type=int, default=128, help="worker window (default 128, the worker's)")
    bench.add_argument("--load-format", help="vLLM load format; 'dummy' = random weights from a real config")
    bench.add_argument("--dtype", help="vLLM dtype (default: float32 for the tiny model, auto otherwise)")
    bench.add_argument("--max-pixels", type=int, help="detector.max_pixels (default: 224*224 for the tiny model)")
    bench.add_argument(
        "--soak", type=int, metavar="N", help="only the soak: N never-repeated uploads, RSS of every process over time"
    )
    bench.add_argument(
        "--soak-cache-gb",
        type=float,
        action="append",
        metavar="GIB",
        help="engine.mm_processor_cache_gb for the soak, repeatable (one engine each, side by side; default: 0.5)",
    )
    bench.add_argument(
        "--soak-warmup", type=float, default=0.25, help="share of the soak's uploads before growth is measured"
    )

    sub.add_parser("settings", help="print every setting with its environment variable and default (Markdown)")

    tiny = sub.add_parser("tiny-model", help="write a tiny random-weight Qwen2.5-VL checkpoint (offline)")
    tiny.add_argument("out_dir", type=Path)
    tiny.add_argument("--seed", type=int, default=0)
    for name in PLUGGED_COMMANDS:
        importlib.import_module(f"zoomguard.commands.{name}").add_parser(sub)
    return parser


# Commands that register themselves: each module's add_parser(sub) adds its parser and sets
# `handler=(args) -> int` with set_defaults. Module imports must stay light (no torch, no vLLM).
PLUGGED_COMMANDS = ("review", "collect", "annotate", "train", "evaluate", "promote", "retrain")


def _engine_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="checkpoint directory or hub id")
    parser.add_argument("--server", action="append", metavar="URL", help="vLLM OpenAI-compatible server (repeatable)")
    parser.add_argument("--family", help="model family: qwen2_5_vl, qwen2_vl, qwen3_vl (default: auto)")
    parser.add_argument("--config", type=Path, help="settings file (.toml or .json)")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    engine: dict[str, Any] = {}
    if args.model:
        engine["model"] = args.model
    if args.server:
        engine["server_urls"] = args.server
        engine["mode"] = "server"
    overrides: dict[str, Any] = {"engine": engine} if engine else {}
    if args.family:
        overrides["detector"] = {"model_family": args.family}
    kafka = {
        key: value
        for key, value in (
            ("bootstrap_servers", getattr(args, "bootstrap_servers", None)),
            ("group_id", getattr(args, "group_id", None)),
        )
        if value
    }
    if kafka:
        overrides["kafka"] = kafka
    return overrides


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except ConfigError as exc:
        print(f"zoomguard: configuration error: {exc}", file=sys.stderr)
        return 2
    except ZoomguardError as exc:
        print(f"zoomguard: {exc.kind}: {exc}", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace) -> int:
    handler = getattr(args, "handler", None)
    if handler is not None:
        return int(handler(args))
    if args.command == "bench":
        from zoomguard.commands.bench import options_from_args, run_bench
        from zoomguard.telemetry.logs import configure_logging

        _quiet_engine_logs()
        configure_logging("WARNING")
        if args.soak:
            from zoomguard.commands.bench import run_soak

            cache_gib = args.soak_cache_gb or [0.5]
            asyncio.run(run_soak(options_from_args(args), args.out, args.soak, cache_gib, args.soak_warmup))
            return 0
        asyncio.run(run_bench(options_from_args(args), args.out))
        return 0
    if args.command == "settings":
        from zoomguard.app.settings_reference import settings_reference

        print(settings_reference())
        return 0
    if args.command == "tiny-model":
        from zoomguard.detector.tiny_model import TinyModelSpec, build_tiny_model

        path = build_tiny_model(args.out_dir, TinyModelSpec(seed=args.seed))
        print(path)
        return 0
    if args.command == "detect":
        from zoomguard.app.config import load_settings
        from zoomguard.commands.detect import run_detect

        _quiet_engine_logs()
        settings = load_settings(args.config, _overrides(args))
        return asyncio.run(
            run_detect(
                settings,
                args.paths,
                as_json=args.json,
                annotate_dir=args.annotate,
                concurrency=args.concurrency,
                progress=not args.no_progress,
            )
        )
    if args.command == "run":
        from zoomguard.app.config import load_settings
        from zoomguard.commands.run import run_worker
        from zoomguard.telemetry.logs import configure_logging

        _quiet_engine_logs()
        settings = load_settings(args.config, _overrides(args))
        configure_logging(args.log_level or settings.telemetry.log_level, args.log_json or settings.telemetry.log_json)
        return asyncio.run(run_worker(settings))
    if args.command == "broker":
        from zoomguard.commands.broker import run_broker

        return run_broker(args.host, args.port)
    if args.command == "demo":
        from zoomguard.commands.demo import run_demo
        from zoomguard.telemetry.logs import configure_logging

        _quiet_engine_logs()
        configure_logging("WARNING")
        return asyncio.run(run_demo(args.out, inline=args.inline, by_url=args.by_url))
    raise ConfigError(f"unknown command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
