"""The weight-free 7B directory: it loads as a Qwen2.5-VL config and processor, holds no weights, counts the 7B's
parameters, and its special tokens point at the tokenizer it ships with."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from zoomguard.bench.arithmetic import model_shape, parameter_counts
from zoomguard.bench.gpu_model import (
    SPECIAL_TOKEN_FIELDS,
    assemble_dummy_model,
    is_dummy_model,
    random_transformers_model,
    token_ids,
    with_token_ids,
)
from zoomguard.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "benchmarks" / "models" / "qwen2.5-vl-7b"
GPU_SCRIPT = ROOT / "benchmarks" / "gpu.sh"


def test_shipped_config_is_the_public_7b() -> None:
    config = json.loads((SHIPPED / "config.json").read_text())
    assert (config["hidden_size"], config["num_hidden_layers"], config["vocab_size"]) == (3584, 28, 152064)
    assert config["vision_config"]["fullatt_block_indexes"] == [7, 15, 23, 31]
    processor = json.loads((SHIPPED / "preprocessor_config.json").read_text())
    assert (processor["min_pixels"], processor["max_pixels"], processor["merge_size"]) == (3136, 12845056, 2)


def test_assembled_directory_loads_without_weights(tiny_model: Path, tmp_path: Path) -> None:
    from transformers import AutoConfig, AutoProcessor

    out = assemble_dummy_model(SHIPPED, tmp_path / "dummy-7b", tiny_model)
    assert not list(out.glob("*.safetensors")) and not list(out.glob("*.bin"))
    config = AutoConfig.from_pretrained(out)
    assert config.model_type == "qwen2_5_vl" and config.text_config.hidden_size == 3584

    processor = AutoProcessor.from_pretrained(out)
    ids = {token: processor.tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKEN_FIELDS.values()}
    written = json.loads((out / "config.json").read_text())
    assert {field: written[field] for field in SPECIAL_TOKEN_FIELDS} == {
        field: ids[token] for field, token in SPECIAL_TOKEN_FIELDS.items()
    }
    # image tokens follow the 7B's preprocessor: 1024x768 -> 1036x756 -> 74 x 54 patches -> 999 tokens
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "look"}]}], add_generation_prompt=True
    )
    inputs = processor(text=[prompt], images=[Image.new("RGB", (1024, 768))])
    assert inputs["image_grid_thw"].tolist() == [[1, 54, 74]]
    assert list(inputs["input_ids"][0]).count(ids["<|image_pad|>"]) == 74 * 54 // 4

    assert parameter_counts(model_shape(written)).total == pytest.approx(8.29e9, rel=0.02)
    assert json.loads((out / "zoomguard-dummy.json").read_text())["kind"] == "dummy-weights"


def test_a_tokenizer_beyond_the_vocabulary_is_refused(tiny_model: Path, tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    config = json.loads((SHIPPED / "config.json").read_text())
    (small / "config.json").write_text(json.dumps({**config, "vocab_size": 100}))
    (small / "preprocessor_config.json").write_text((SHIPPED / "preprocessor_config.json").read_text())
    with pytest.raises(ConfigError, match="outside the model's 100 rows"):
        assemble_dummy_model(small, tmp_path / "out", tiny_model)


def test_token_ids_are_rewritten_in_both_layouts() -> None:
    tokenizer = {"added_tokens": [{"id": i, "content": token} for i, token in enumerate(SPECIAL_TOKEN_FIELDS.values())]}
    nested = {"image_token_id": 151655, "text_config": {"eos_token_id": 151645, "hidden_size": 8}}
    out = with_token_ids(nested, token_ids(tokenizer))
    assert out["image_token_id"] == 5 and out["text_config"]["eos_token_id"] == 1
    assert "image_token_id" not in out["text_config"]  # only the fields the section had
    assert nested["image_token_id"] == 151655  # the input is left alone
    with pytest.raises(ConfigError, match="image_pad"):
        with_token_ids(nested, {"<|im_end|>": 1})


def test_gpu_script_parses_and_uses_the_shipped_config() -> None:
    subprocess.run(["bash", "-n", str(GPU_SCRIPT)], check=True)
    text = GPU_SCRIPT.read_text()
    assert "set -euo pipefail" in text
    assert "benchmarks/models/qwen2.5-vl-7b" in text
    assert "--load-format dummy" in text and "--dtype bfloat16" in text


def test_a_small_dummy_runs_in_transformers_at_random(tiny_model: Path, tmp_path: Path) -> None:
    """The naive baseline's path for a weight-free directory: random weights of the config's shape, generating."""
    import torch
    from transformers import AutoProcessor

    config = json.loads((SHIPPED / "config.json").read_text())
    config.update(hidden_size=64, num_hidden_layers=1, num_attention_heads=1, num_key_value_heads=1,
                  intermediate_size=64, vocab_size=1024)  # fmt: skip
    config["rope_scaling"]["mrope_section"] = [8, 12, 12]
    config["vision_config"].update(depth=1, hidden_size=32, num_heads=2, intermediate_size=32, out_hidden_size=64,
                                   fullatt_block_indexes=[0])  # fmt: skip
    source = tmp_path / "shape"
    source.mkdir()
    (source / "config.json").write_text(json.dumps(config))
    (source / "preprocessor_config.json").write_text((SHIPPED / "preprocessor_config.json").read_text())
    out = assemble_dummy_model(source, tmp_path / "dummy", tiny_model)
    assert is_dummy_model(out) and not is_dummy_model(tiny_model)

    model = random_transformers_model(out, "float32")
    assert sum(p.numel() for p in model.parameters()) == parameter_counts(model_shape(config)).total
    processor = AutoProcessor.from_pretrained(out)
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "look"}]}], add_generation_prompt=True
    )
    inputs = processor(text=[prompt], images=[Image.new("RGB", (112, 112))], return_tensors="pt")
    with torch.inference_mode():
        generated = model.generate(**inputs, max_new_tokens=3, min_new_tokens=3, do_sample=False)
    assert generated.shape[1] == inputs["input_ids"].shape[1] + 3
