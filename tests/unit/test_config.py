"""Settings: file < environment < flags, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from zoomguard.app.config import load_settings
from zoomguard.detector.engines.settings import EngineSettings
from zoomguard.detector.factory import build_engine, check_context_fits
from zoomguard.detector.families import FAMILIES
from zoomguard.detector.settings import DetectorSettings
from zoomguard.errors import ConfigError
from zoomguard.kafka import settings as kafka_settings


def test_defaults_are_valid() -> None:
    settings = load_settings(environ={})
    assert settings.detector.ai_threshold > settings.detector.real_threshold
    assert settings.engine.mode == "in_process"


def test_precedence_file_env_overrides(tmp_path: Path) -> None:
    config = tmp_path / "zoomguard.toml"
    config.write_text('[engine]\nmodel = "from-file"\nmax_model_len = 4096\n[detector]\nai_threshold = 0.9\n')
    env = {"ZOOMGUARD_ENGINE__MODEL": "from-env", "ZOOMGUARD_DETECTOR__CROPS__MAX_CROPS": "2", "OTHER": "x"}
    settings = load_settings(config, {"engine": {"model": "from-flag"}}, environ=env)
    assert settings.engine.model == "from-flag"
    assert settings.engine.max_model_len == 4096
    assert settings.detector.ai_threshold == 0.9
    assert settings.detector.crops.max_crops == 2


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"ZOOMGUARD_DETECTOR__AI_THRESHOLD": "0.1"}, "real_threshold"),
        ({"ZOOMGUARD_DETECTOR__MAX_REGIONS": "many"}, "detector.max_regions"),
        ({"ZOOMGUARD_ENGINE__NOPE": "1"}, "engine.nope"),
    ],
)
def test_invalid_settings_name_the_key(env: dict[str, str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_settings(environ=env)


def test_missing_or_bad_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml", environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[engine\n")
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(bad, environ={})


def test_secret_never_in_repr() -> None:
    settings = load_settings(environ={"ZOOMGUARD_ENGINE__API_KEY": "s3cret-token"})
    assert "s3cret-token" not in repr(settings)
    assert "s3cret-token" not in settings.model_dump_json()


def test_context_too_small_is_refused_with_advice() -> None:
    settings = load_settings(environ={}, overrides={"engine": {"model": "m", "max_model_len": 2048}})
    with pytest.raises(ConfigError, match="raise max_model_len"):
        check_context_fits(settings.engine, settings.detector, FAMILIES["qwen2_5_vl"])


def test_context_check_counts_the_family_patches() -> None:
    """Qwen3-VL's image tokens cover 32 px squares, Qwen2.5-VL's 28: the same context fits one and not the other."""
    engine, detector = EngineSettings(model="m", max_model_len=4200), DetectorSettings()
    check_context_fits(engine, detector, FAMILIES["qwen3_vl"])
    with pytest.raises(ConfigError, match="raise max_model_len"):
        check_context_fits(engine, detector, FAMILIES["qwen2_5_vl"])


def test_in_process_needs_a_model() -> None:
    with pytest.raises(ConfigError, match="--model"):
        build_engine(EngineSettings(), DetectorSettings())


def test_server_mode_needs_urls() -> None:
    with pytest.raises(ConfigError, match="server URL"):
        build_engine(EngineSettings(mode="server"), DetectorSettings())


@pytest.mark.parametrize(
    ("name", "raw", "read"),
    [
        ("ZOOMGUARD_ENGINE__MODEL_VERSION", "2026", lambda s: s.engine.model_version == "2026"),
        ("ZOOMGUARD_ENGINE__MODEL", "true", lambda s: s.engine.model == "true"),
        ("ZOOMGUARD_KAFKA__SASL_PASSWORD", "123456", lambda s: s.kafka.sasl_password.get_secret_value() == "123456"),
        ("ZOOMGUARD_KAFKA__SASL_USERNAME", "0042", lambda s: s.kafka.sasl_username == "0042"),
        ("ZOOMGUARD_KAFKA__COMPRESSION_TYPE", "lz4", lambda s: s.kafka.compression_type == "lz4"),
        ("ZOOMGUARD_WORKER__MAX_IN_FLIGHT", "300", lambda s: s.worker.max_in_flight == 300),
        ("ZOOMGUARD_DETECTOR__AI_THRESHOLD", "0.9", lambda s: s.detector.ai_threshold == 0.9),
        ("ZOOMGUARD_TELEMETRY__LOG_JSON", "false", lambda s: s.telemetry.log_json is False),
        ("ZOOMGUARD_ENGINE__SERVER_URLS", '["http://a:8000"]', lambda s: s.engine.server_urls == ["http://a:8000"]),
        ("ZOOMGUARD_DETECTOR__LIMITS__MAX_JPEG_SCANS", "20", lambda s: s.detector.limits.max_jpeg_scans == 20),
    ],
)
def test_environment_values_are_parsed_against_the_settings_type(name: str, raw: str, read: object) -> None:
    env = {name: raw}
    if "SASL" in name:
        env |= {"ZOOMGUARD_KAFKA__SECURITY_PROTOCOL": "SASL_SSL", "ZOOMGUARD_KAFKA__SASL_MECHANISM": "PLAIN"}
        env.setdefault("ZOOMGUARD_KAFKA__SASL_USERNAME", "u")
        env.setdefault("ZOOMGUARD_KAFKA__SASL_PASSWORD", "p")
    settings = load_settings(environ=env)
    assert read(settings)  # type: ignore[operator]


def test_a_codec_without_its_library_is_refused_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(kafka_settings.CODEC_AVAILABLE, "zstd", lambda: False)
    with pytest.raises(
        ConfigError, match=r"compression_type zstd needs its codec library: pip install 'kafka-python\[zstd\]'"
    ):
        load_settings(environ={"ZOOMGUARD_KAFKA__COMPRESSION_TYPE": "zstd"})
    assert load_settings(environ={"ZOOMGUARD_KAFKA__COMPRESSION_TYPE": "none"}).kafka.compression_type is None


def test_every_kafka_codec_library_is_installed() -> None:
    from kafka import codec

    assert codec.has_gzip() and codec.has_snappy() and codec.has_lz4() and codec.has_zstd()
