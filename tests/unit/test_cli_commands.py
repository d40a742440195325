"""The commands: all registered from one list, parsers light to build, settings flags mapped the same way."""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from zoomguard.app.config import load_settings
from zoomguard.cli import build_parser, main
from zoomguard.commands.flags import flag_settings, setting_field, settings_flag, settings_overrides
from zoomguard.commands.registry import COMMANDS

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


def _every_parser(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The argv prefix of every parser, nested ones included (`review export`, `train sft`)."""
    yield prefix
    for name, child in _subparsers(parser).items():
        yield from _every_parser(child, (*prefix, name))


def _parser_at(path: tuple[str, ...]) -> argparse.ArgumentParser:
    parser = build_parser()
    for name in path:
        parser = _subparsers(parser)[name]
    return parser


def test_every_readme_command_is_registered() -> None:
    table = README.read_text().split("## Commands", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `zoomguard ([a-z-]+)", table, re.MULTILINE))
    assert {"detect", "run", "review", "collect", "annotate", "train", "eval", "promote", "retrain"} <= listed
    assert listed == set(_subparsers(build_parser())) == {command.name for command in COMMANDS}


def test_the_registry_is_every_command_module() -> None:
    shared = {"__init__", "common", "flags", "registry", "demo_report"}
    modules = {p.stem for p in (ROOT / "zoomguard" / "commands").glob("*.py")} - shared
    assert {command.run.__module__.rsplit(".", 1)[1] for command in COMMANDS} == modules


@pytest.mark.parametrize("path", list(_every_parser(build_parser()))[1:], ids=" ".join)
def test_help_of_every_command(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*path, "--help"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: zoomguard {' '.join(path)}")


def test_building_the_parser_imports_no_heavy_packages() -> None:
    code = "import sys; from zoomguard.cli import build_parser; build_parser(); " + (
        "print(sorted(m for m in ('torch', 'vllm', 'trl', 'transformers', 'pyarrow', 'peft') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return found


def test_commands_do_not_import_the_cli_and_the_cli_only_the_registry() -> None:
    for module in (ROOT / "zoomguard" / "commands").glob("*.py"):
        assert not {name for name in _imports(module) if name.startswith("zoomguard.cli")}, module.name
    from_commands = {name for name in _imports(ROOT / "zoomguard" / "cli.py") if name.startswith("zoomguard.commands")}
    assert from_commands == {"zoomguard.commands.registry", "zoomguard.commands.registry.COMMANDS"}


OVERRIDES: list[tuple[str, dict[str, Any]]] = [
    ("detect a.png", {}),
    (
        "detect a.png --server http://g1:8000 --server http://g2:8000",
        {"engine": {"server_urls": ["http://g1:8000", "http://g2:8000"], "mode": "server"}},
    ),
    ("detect a.png --model m --family qwen3_vl", {"engine": {"model": "m"}, "detector": {"model_family": "qwen3_vl"}}),
    ("detect a.png --model 123", {"engine": {"model": "123"}}),  # a text setting keeps a number-like value as text
    ("run --bootstrap-servers k:9092 --group-id 007", {"kafka": {"bootstrap_servers": "k:9092", "group_id": "007"}}),
    ("run --log-level DEBUG --log-json", {"telemetry": {"log_level": "DEBUG", "log_json": True}}),
    ("train sft", {}),
    ("train sft --lora-r 8 --lora-dropout 0.1 --bf16", {"training": {"lora_r": 8, "lora_dropout": 0.1, "bf16": True}}),
    ("train sft --lr 3e-4", {"training": {"sft_learning_rate": 3e-4}}),
    ("train grpo --lr 3e-4 --output runs/g", {"training": {"grpo_learning_rate": 3e-4, "output_dir": "runs/g"}}),
    ("eval --dataset d --concurrency 4 --split train", {"evaluation": {"concurrency": 4, "split": "train"}}),
    (
        "promote --candidate c --dataset d --metric f1 --margin 0.05 --registry reg --bootstrap-servers k:1",
        {
            "evaluation": {"primary_metric": "f1", "margin": 0.05, "registry_dir": "reg"},
            "kafka": {"bootstrap_servers": "k:1"},
        },
    ),
    ("review webhook --host 0.0.0.0 --port 9000", {"review": {"webhook_host": "0.0.0.0", "webhook_port": 9000}}),
    ("review export --bootstrap-servers k:2", {"kafka": {"bootstrap_servers": "k:2"}}),
    (
        "annotate --server http://t:8000 --model teacher --concurrency 2",
        {"annotate": {"server_urls": ["http://t:8000"], "model": "teacher", "concurrency": 2}},
    ),
    ("retrain --dataset data --run-dir runs/r", {"review": {"dataset_dir": "data"}, "retrain": {"run_dir": "runs/r"}}),
    ("collect --out x --bootstrap-servers k:3", {"kafka": {"bootstrap_servers": "k:3"}}),
]


@pytest.mark.parametrize(("argv", "expected"), OVERRIDES, ids=[argv for argv, _ in OVERRIDES])
def test_settings_flags_become_overrides(argv: str, expected: dict[str, Any]) -> None:
    overrides = settings_overrides(build_parser().parse_args(argv.split()))
    assert overrides == expected
    load_settings(overrides=overrides, environ={})  # and the settings accept them


def test_flags_win_over_the_environment() -> None:
    args = build_parser().parse_args(["train", "sft", "--lora-r", "8"])
    environ = {"ZOOMGUARD_TRAINING__LORA_R": "4", "ZOOMGUARD_TRAINING__LORA_ALPHA": "64"}
    settings = load_settings(overrides=settings_overrides(args), environ=environ)
    assert (settings.training.lora_r, settings.training.lora_alpha) == (8, 64)


def test_every_settings_flag_takes_its_help_from_the_field() -> None:
    seen = set()
    for path in _every_parser(build_parser()):
        parser = _parser_at(path)
        actions = {option: action for action in parser._actions for option in action.option_strings}
        for flag, setting in flag_settings(parser).items():
            description = setting_field(setting).description
            assert description and actions[flag].help
            assert actions[flag].help.replace("%%", "%").startswith(description), (path, flag)
            assert f"[{setting}" in actions[flag].help
            seen.add(setting)
    assert {"engine.model", "engine.server_urls", "kafka.bootstrap_servers", "training.lora_r"} <= seen


def test_settings_flag_reads_type_choices_and_repeat_from_the_field() -> None:
    parser = argparse.ArgumentParser()
    lora_r = settings_flag(parser, "--lora-r", "training.lora_r")
    metric = settings_flag(parser, "--metric", "evaluation.primary_metric")
    servers = settings_flag(parser, "--server", "engine.server_urls", also={"engine.mode": "server"})
    assert lora_r.type is int and lora_r.help == "LoRA rank [training.lora_r]"
    assert metric.choices is not None and "f1" in metric.choices
    assert isinstance(servers, argparse._AppendAction) and "engine.mode=server" in (servers.help or "")
    assert settings_overrides(parser.parse_args([])) == {}
    with pytest.raises(SystemExit):
        parser.parse_args(["--lora-r", "eight"])


def test_settings_flag_refuses_unknown_settings_and_unflaggable_types() -> None:
    with pytest.raises(ValueError, match="no setting"):
        settings_flag(argparse.ArgumentParser(), "--x", "training.no_such_field")
    with pytest.raises(ValueError, match="no settings section"):
        settings_flag(argparse.ArgumentParser(), "--x", "nowhere.lora_r")
    with pytest.raises(TypeError, match="reward_weights"):
        settings_flag(argparse.ArgumentParser(), "--x", "training.reward_weights")


def test_exit_codes_and_messages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["collect", "--config", str(tmp_path / "missing.toml")]) == 2
    assert capsys.readouterr().err.startswith("zoomguard: configuration error: config file not found")
    assert main(["review", "import", str(tmp_path / "absent.json")]) == 1
    assert re.match(r"zoomguard: \w+: .*absent.json: no such file", capsys.readouterr().err)
