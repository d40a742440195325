"""The commands' shared flags, defined once, and the settings overrides built from them.

A flag that sets a setting is declared with `settings_flag`: its type, choices, repeatability and help come
from the setting's field in `Settings` (as `zoomguard settings` documents it), and the flag records the
setting's path, so `settings_from(args)` builds every command's overrides the same way. Flags win over the
config file and the environment; a flag not given leaves the setting to them.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from zoomguard.app.config import Settings, load_settings, without_none

# Namespace keys carrying a flag's target (its parser's defaults): `settings_overrides` finds them there.
_TARGET = "settings-flag:"
_TEXT = (str, Path, SecretStr)


@dataclass(frozen=True)
class _Target:
    dest: str
    path: str
    also: tuple[tuple[str, Any], ...]


def settings_flag(
    parser: argparse.ArgumentParser, flag: str, path: str, *, also: Mapping[str, Any] | None = None, **options: Any
) -> argparse.Action:
    """Add `flag`, which sets the setting at dotted `path` when given (and the settings in `also` with it).

    `options` go to `add_argument` and win over what the field implies (a metavar, say).
    """
    info = setting_field(path)
    extra = tuple((also or {}).items())
    derived = {**_value_options(info.annotation, path), "help": _help(info, path, extra)}
    action = parser.add_argument(flag, default=None, **{**derived, **options})
    parser.set_defaults(**{_TARGET + action.dest: _Target(action.dest, path, extra)})
    return action


def setting_field(path: str) -> FieldInfo:
    """The field of `Settings` at dotted `path` (`training.lora_r`); ValueError when there is none."""
    model: type[BaseModel] = Settings
    *sections, name = path.split(".")
    for section in sections:
        inner = model.model_fields.get(section)
        kind = without_none(inner.annotation) if inner is not None else None
        if not (isinstance(kind, type) and issubclass(kind, BaseModel)):
            raise ValueError(f"no settings section {section!r} in {path!r}")
        model = kind
    if name not in model.model_fields:
        raise ValueError(f"no setting {path!r}")
    return model.model_fields[name]


def settings_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings flags given on the command line, as nested overrides for `load_settings`."""
    overrides: dict[str, Any] = {}
    for key, target in vars(args).items():
        if not key.startswith(_TARGET) or (value := getattr(args, target.dest)) is None:
            continue
        for path, setting in ((target.path, value), *target.also):
            *sections, name = path.split(".")
            node = overrides
            for section in sections:
                node = node.setdefault(section, {})
            node[name] = setting
    return overrides


def flag_settings(parser: argparse.ArgumentParser) -> dict[str, str]:
    """The settings flags of `parser` (not its subparsers), as {"--lora-r": "training.lora_r"}."""
    found = {}
    for action in parser._actions:
        target = parser.get_default(_TARGET + action.dest)
        if isinstance(target, _Target):
            found[action.option_strings[0]] = target.path
    return found


def settings_from(args: argparse.Namespace) -> Settings:
    """Defaults < `--config` file < ZOOMGUARD_* environment < settings flags."""
    return load_settings(getattr(args, "config", None), settings_overrides(args))


def _value_options(annotation: Any, path: str) -> dict[str, Any]:
    kind = without_none(annotation)
    if get_origin(kind) is list:
        return {**_value_options(get_args(kind)[0], path), "action": "append"}
    if kind is bool:
        return {"action": "store_true"}
    if get_origin(kind) is Literal and all(isinstance(choice, str) for choice in get_args(kind)):
        return {"choices": get_args(kind)}
    if kind in (int, float):
        return {"type": kind}
    if isinstance(kind, type) and issubclass(kind, _TEXT):
        return {}  # argparse keeps text as written: `--group-id 007` stays "007"
    raise TypeError(f"{path}: no command-line form for settings of type {kind!r}")


def _help(info: FieldInfo, path: str, also: tuple[tuple[str, Any], ...]) -> str:
    repeat = "; repeatable" if get_origin(without_none(info.annotation)) is list else ""
    sets = ", ".join([path, *(f"{key}={value}" for key, value in also)])
    text = f"{info.description or ''}{repeat} [{sets}]".lstrip()
    return text.replace("%", "%%")  # argparse formats help with %


# ---------------------------------------------------------------- the shared flags


def config_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="settings file (.toml or .json)")


def progress_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")


def kafka_flags(parser: argparse.ArgumentParser, *, group: bool = False) -> None:
    settings_flag(parser, "--bootstrap-servers", "kafka.bootstrap_servers", metavar="HOST:PORT[,...]")
    if group:
        settings_flag(parser, "--group-id", "kafka.group_id")


def model_flag(parser: argparse.ArgumentParser) -> None:
    settings_flag(parser, "--model", "engine.model", metavar="DIR_OR_ID")


def server_flag(parser: argparse.ArgumentParser) -> None:
    settings_flag(parser, "--server", "engine.server_urls", also={"engine.mode": "server"}, metavar="URL")


def family_flag(parser: argparse.ArgumentParser) -> None:
    settings_flag(parser, "--family", "detector.model_family")


def log_flags(parser: argparse.ArgumentParser) -> None:
    settings_flag(parser, "--log-level", "telemetry.log_level")
    settings_flag(parser, "--log-json", "telemetry.log_json")
