"""One settings model per process: defaults, then a config file (TOML/JSON), then ZOOMGUARD_* variables.

Environment names are the field path in upper case joined by double underscores:
`ZOOMGUARD_ENGINE__MODEL`, `ZOOMGUARD_DETECTOR__AI_THRESHOLD`, `ZOOMGUARD_DETECTOR__CROPS__MAX_CROPS`.
Values are parsed against the setting's type: text settings verbatim, the others as JSON when they parse
(numbers, booleans, lists, tables), else as written.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from zoomguard.dataset.settings import AnnotateSettings
from zoomguard.detector.engines.settings import EngineSettings
from zoomguard.detector.settings import DetectorSettings
from zoomguard.errors import ConfigError
from zoomguard.evaluation.settings import EvaluationSettings
from zoomguard.evidence.settings import EvidenceSettings
from zoomguard.kafka.settings import KafkaSettings, TopicSettings
from zoomguard.known.settings import KnownContentSettings
from zoomguard.media.settings import FetchSettings
from zoomguard.promotion.settings import RetrainSettings
from zoomguard.review.settings import ReviewSettings
from zoomguard.telemetry.settings import TelemetrySettings
from zoomguard.training.settings import TrainSettings
from zoomguard.worker.settings import WorkerSettings

ENV_PREFIX = "ZOOMGUARD_"


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    engine: EngineSettings = Field(default_factory=EngineSettings)
    detector: DetectorSettings = Field(default_factory=DetectorSettings)
    evidence: EvidenceSettings = Field(default_factory=EvidenceSettings)
    known: KnownContentSettings = Field(default_factory=KnownContentSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    fetch: FetchSettings = Field(default_factory=FetchSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    review: ReviewSettings = Field(default_factory=ReviewSettings)
    training: TrainSettings = Field(default_factory=TrainSettings)
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings)
    retrain: RetrainSettings = Field(default_factory=RetrainSettings)
    annotate: AnnotateSettings = Field(default_factory=AnnotateSettings)


def load_settings(
    config_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Merge file < environment < explicit overrides (command-line flags); errors say which key is wrong."""
    data: dict[str, Any] = {}
    if config_file is not None:
        _deep_merge(data, _read_file(Path(config_file)))
    _deep_merge(data, _from_environ(os.environ if environ is None else environ))
    _deep_merge(data, dict(overrides or {}))
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors(include_url=False)
        )
        raise ConfigError(f"invalid settings: {problems}") from None


def _read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            return tomllib.loads(text)
        if path.suffix == ".json":
            loaded = json.loads(text)
            if isinstance(loaded, dict):
                return loaded
            raise ConfigError(f"{path}: the top level must be an object")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    raise ConfigError(f"{path}: use a .toml or .json config file")


def _from_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = _parse_value(raw, _is_text_field(path))
    return data


def _parse_value(raw: str, text: bool) -> Any:
    """Text settings take the value verbatim (a password or version may look like a number); the others are
    read as JSON when they parse (numbers, booleans, lists, tables), else passed on for pydantic to judge."""
    if text:
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


_TEXT_TYPES: tuple[type, ...] = (str, SecretStr, Path)


def _is_text_field(path: list[str]) -> bool:
    """Follow the settings models (pydantic models and dataclasses) down `path`; True when it ends on a field
    whose type is text (str, SecretStr, a path, a Literal of strings), optional or not."""
    current: Any = Settings
    for part in path:
        hints = _field_types(current)
        if part not in hints:
            return False
        current = without_none(hints[part])
    if get_origin(current) is Literal:
        return all(isinstance(choice, str) for choice in get_args(current))
    return isinstance(current, type) and issubclass(current, _TEXT_TYPES)


def _field_types(model: Any) -> dict[str, Any]:
    if isinstance(model, type) and issubclass(model, BaseModel):
        return {name: info.annotation for name, info in model.model_fields.items()}
    if dataclasses.is_dataclass(model) and isinstance(model, type):
        return get_type_hints(model)
    return {}


def without_none(annotation: Any) -> Any:
    """`X | None` -> X (any other annotation unchanged): what a setting holds when it is set."""
    if get_origin(annotation) in (Union, UnionType):
        rest = [arg for arg in get_args(annotation) if arg is not type(None)]
        return rest[0] if len(rest) == 1 else annotation
    return annotation


def _deep_merge(into: dict[str, Any], update: Mapping[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = dict(value) if isinstance(value, Mapping) else value
