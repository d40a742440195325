"""Build an engine and a detector from settings: the one place that wires the detector together."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

from opentelemetry import trace

from zoomguard.detector.engines.adapters import startup_adapter
from zoomguard.detector.engines.base import Engine
from zoomguard.detector.engines.openai_server import OpenAIServerEngine
from zoomguard.detector.engines.settings import EngineSettings
from zoomguard.detector.engines.vllm_inprocess import VllmInProcessEngine
from zoomguard.detector.families import ModelFamily, resolve_family
from zoomguard.detector.settings import DetectorSettings
from zoomguard.detector.zoomin import ServingModel, ZoomInDetector
from zoomguard.errors import ConfigError
from zoomguard.schemas.detection import ModelInfo

# Tokens a prompt needs beside its images: chat scaffolding, both instructions, Query 1's answer.
_TEXT_TOKEN_MARGIN = 512


def build_engine(engine: EngineSettings, detector: DetectorSettings) -> Engine:
    """The configured engine, not started. Settings that cannot work are refused here, before any load."""
    if engine.model or detector.model_family != "auto":
        resolve_family(engine.model, detector.model_family)
    if not engine.model and engine.mode == "in_process":
        raise ConfigError("no model: pass --model DIR_OR_NAME (or set engine.model / ZOOMGUARD_ENGINE__MODEL)")
    adapter = startup_adapter(engine.lora_adapter, engine.lora_version)
    if engine.mode == "server":
        return OpenAIServerEngine(engine, startup_adapter=adapter)
    check_context_fits(engine, detector, resolve_family(engine.model, detector.model_family))
    return VllmInProcessEngine(engine, images_per_prompt=1 + detector.crops.max_crops, adapter=adapter)


def check_context_fits(engine: EngineSettings, detector: DetectorSettings, family: ModelFamily) -> None:
    """Refuse settings whose worst-case Query 2 cannot fit the context, before any image fails on it.

    One image token covers one `family.resize_factor`-pixel square (28 for Qwen2/2.5-VL, 32 for Qwen3-VL)."""
    det = detector
    patch = family.resize_factor
    # Crops are zoomed to at most zoom_target_side on their longer side (one patch of rounding slack).
    crop_side = math.ceil(det.crops.zoom_target_side / patch) + 1
    crop_tokens = min(det.max_pixels // (patch * patch), crop_side * crop_side // 4)
    image_tokens = det.max_pixels // (patch * patch) + det.crops.max_crops * crop_tokens
    # Whatever the family, no coordinate exceeds the most elongated model image's side (grids stop at 1000).
    coordinate_max = max(1000, math.ceil(math.sqrt(det.max_pixels * 200)))
    try:
        locate, examine = det.answer_budgets(coordinate_max)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    needed = image_tokens + locate + examine + _TEXT_TOKEN_MARGIN
    if needed > engine.max_model_len:
        raise ConfigError(
            f"engine.max_model_len={engine.max_model_len} is too small for the full image and "
            f"{det.crops.max_crops} crops plus both longest answers (~{needed} tokens): raise max_model_len, or "
            "lower detector.max_pixels, detector.crops.max_crops or the answer caps (explanation_max_chars, "
            "finding_max_chars, max_regions)"
        )


def build_detector(
    engine_settings: EngineSettings, detector: DetectorSettings, engine: Engine, tracer: trace.Tracer | None = None
) -> ZoomInDetector:
    """The detector serves the base weights, or `engine.lora_adapter` when set (the engine built from the same
    settings loaded it under the same name)."""
    family = resolve_family(engine_settings.model or engine.model_name, detector.model_family)
    adapter = startup_adapter(engine_settings.lora_adapter, engine_settings.lora_version)
    info = model_info(engine_settings, engine, family)
    if adapter is not None:
        info = info.model_copy(update={"version": adapter.name})
    serving = ServingModel(info=info, adapter=adapter.name if adapter else None)
    return ZoomInDetector(engine, detector, family, serving, tracer)


def model_info(engine_settings: EngineSettings, engine: Engine, family: ModelFamily) -> ModelInfo:
    """The base model's identity; its version is what verdicts carry when no adapter is served."""
    name = engine_settings.model or engine.model_name
    version = engine_settings.model_version or checkpoint_version(name)
    return ModelInfo(name=name, version=version, family=family.name)


def checkpoint_version(model: str) -> str:
    """A stable short id for a local checkpoint (config + weight file names and sizes); the name otherwise."""
    path = Path(model)
    if not path.is_dir():
        return model
    digest = hashlib.sha256()
    config = path / "config.json"
    if config.is_file():
        digest.update(json.dumps(json.loads(config.read_text()), sort_keys=True).encode())
    for weights in sorted(path.glob("*.safetensors")):
        digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
    return "sha256:" + digest.hexdigest()[:12]
