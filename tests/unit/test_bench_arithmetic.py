"""The arithmetic limit: parameter counts against real models, FLOPs that grow with the work, a real peak."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from safetensors import safe_open

from zoomguard.bench.arithmetic import (
    ModelShape,
    QueryCounts,
    arithmetic_figures,
    arithmetic_limit,
    flops_breakdown,
    flops_per_image,
    image_patches,
    measure_peak_flops,
    model_shape,
    parameter_counts,
)

CONFIG_7B = Path(__file__).resolve().parents[2] / "benchmarks" / "models" / "qwen2.5-vl-7b" / "config.json"


def shape_7b() -> ModelShape:
    return model_shape(json.loads(CONFIG_7B.read_text()))


def test_tiny_model_count_matches_its_weights(tiny_model: Path) -> None:
    """The nested text_config layout, against every tensor the checkpoint holds."""
    counts = parameter_counts(model_shape(json.loads((tiny_model / "config.json").read_text())))
    with safe_open(str(tiny_model / "model.safetensors"), "pt") as weights:
        real = sum(math.prod(weights.get_slice(name).get_shape()) for name in weights.keys())  # noqa: SIM118
        vision = sum(math.prod(weights.get_slice(n).get_shape()) for n in weights.keys() if "visual" in n)  # noqa: SIM118
    assert counts.total == pytest.approx(real, rel=0.01)
    assert counts.vision == pytest.approx(vision, rel=0.01)


def test_7b_config_counts_about_8_29_billion() -> None:
    """Qwen2.5-VL-7B-Instruct: ~7.6B in the language model, ~0.67B in the vision tower (flat layout)."""
    counts = parameter_counts(shape_7b())
    assert counts.total == pytest.approx(8.29e9, rel=0.02)
    assert counts.language == pytest.approx(7.6e9, rel=0.02)
    assert counts.vision == pytest.approx(0.67e9, rel=0.02)
    assert counts.lm_head == counts.embedding  # untied


def test_7b_count_matches_transformers_model_on_the_meta_device() -> None:
    """The flat layout, against the model transformers builds from it (meta tensors: shapes, no memory)."""
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    config = json.loads(CONFIG_7B.read_text())
    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(**config))
    real = sum(parameter.numel() for parameter in model.parameters())
    assert parameter_counts(model_shape(config)).total == pytest.approx(real, rel=0.01)


def test_tied_embeddings_are_counted_once() -> None:
    config = json.loads(CONFIG_7B.read_text())
    tied = parameter_counts(model_shape({**config, "tie_word_embeddings": True}))
    untied = parameter_counts(model_shape(config))
    assert untied.total - tied.total == 152064 * 3584


def test_other_families_are_refused() -> None:
    with pytest.raises(ValueError, match=r"Qwen2\.5-VL"):
        model_shape({"model_type": "qwen2_vl", "vision_config": {}})


def test_flops_grow_linearly_in_tokens_without_attention() -> None:
    """With no attention context (one token each, nothing cached) FLOPs are 2 x layer parameters per token."""
    shape = shape_7b()
    one = flops_breakdown(shape, [QueryCounts(prompt_tokens=100)], 0)["lm_matmul"]
    two = flops_breakdown(shape, [QueryCounts(prompt_tokens=200)], 0)["lm_matmul"]
    assert two == pytest.approx(2 * one)
    assert one == pytest.approx(2 * parameter_counts(shape).decoder_layers * 100)


def test_flops_monotone_in_every_count() -> None:
    shape = shape_7b()
    base = flops_per_image(shape, [QueryCounts(prompt_tokens=1000, generated_tokens=50)], 4000)
    assert flops_per_image(shape, [QueryCounts(prompt_tokens=2000, generated_tokens=50)], 4000) > base
    assert flops_per_image(shape, [QueryCounts(prompt_tokens=1000, generated_tokens=100)], 4000) > base
    assert flops_per_image(shape, [QueryCounts(prompt_tokens=1000, generated_tokens=50)], 8000) > base
    # what the prefix cache serves is not computed
    cached = flops_per_image(shape, [QueryCounts(prompt_tokens=1000, cached_tokens=900, generated_tokens=50)], 4000)
    assert cached < base


def test_attention_term_uses_the_midpoint_of_the_computed_positions() -> None:
    query = QueryCounts(prompt_tokens=1000, cached_tokens=600, generated_tokens=100)
    assert query.computed_tokens == 500
    assert query.mean_context == pytest.approx((601 + 1100) / 2)
    shape = shape_7b()
    attention = flops_breakdown(shape, [query], 0)["lm_attention"]
    assert attention == pytest.approx(4 * 28 * 3584 * 500 * (601 + 1100) / 2)


def test_image_patches_follow_the_smart_resize() -> None:
    # 1024x768 -> 1036x756 (multiples of 28): 74 x 54 patches of 14 px
    assert image_patches(1024, 768, min_pixels=3136, max_pixels=12845056) == 74 * 54
    # capped: at most max_pixels / 14² patches
    assert image_patches(4000, 3000, min_pixels=3136, max_pixels=1003520) <= 1003520 // 196


def test_arithmetic_limit() -> None:
    assert arithmetic_limit(1e15, 2e13) == pytest.approx(50.0)
    with pytest.raises(ValueError):
        arithmetic_limit(1e15, 0.0)


def test_cpu_peak_is_a_sane_number() -> None:
    peak = measure_peak_flops("cpu", "float32", seconds=0.5)
    assert math.isfinite(peak)
    assert 1e8 < peak < 1e13


def test_arithmetic_figures_are_json_ready_and_consistent() -> None:
    shape = shape_7b()
    queries = [QueryCounts(prompt_tokens=1150, generated_tokens=60), QueryCounts(1800, 1100, 40)]
    figures = arithmetic_figures(shape, queries, 6000, peak_flops=7e14, device="cuda", dtype="bfloat16", measured_ips=5)
    json.dumps(figures)
    assert figures["flops_per_image"] == pytest.approx(sum(figures["flops_breakdown"].values()))
    assert figures["limit_ips"] == pytest.approx(7e14 / figures["flops_per_image"])
    assert figures["share_of_limit"] == pytest.approx(5 / figures["limit_ips"])
    assert figures["work_per_image"]["lm_tokens_computed"] == 1150 + 60 + 700 + 40
