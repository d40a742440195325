"""A weight-free checkpoint directory of a real model's shape, for vLLM's `load_format=dummy`.

Why: the benchmark on a GPU should cost what Qwen2.5-VL-7B costs, on a machine with no model hub. vLLM's dummy
loader reads no weight file at all (no shards, no index): it builds the model from config.json and fills every
tensor with random values, so the shapes, the kernels and the memory are the 7B's and only the answers are noise.
What it still needs is a tokenizer, a chat template and a processor: those come from the tiny offline model
(zoomguard.detector.tiny_model), whose tokenizer has the special tokens Qwen2.5-VL's code paths look up, with ids
far below the 7B's vocabulary (152064 rows), so the random embedding table serves it.

What differs from the real model, said plainly: text is tokenised by the tiny tokenizer (a few hundred byte-level
BPE merges), so text token counts are not Qwen's; image tokens follow the 7B config and its preprocessor (14-pixel
patches, 2x2 merge), so the vision work per image is the real one. The special-token ids in config.json are
rewritten to the tiny tokenizer's (vLLM finds image placeholders and builds M-RoPE positions from them).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from zoomguard.errors import ConfigError

# config.json's special-token fields, and the token each names in Qwen's tokenizer (151643 + its index).
SPECIAL_TOKEN_FIELDS = {
    "bos_token_id": "<|endoftext|>",
    "eos_token_id": "<|im_end|>",
    "vision_start_token_id": "<|vision_start|>",
    "vision_end_token_id": "<|vision_end|>",
    "vision_token_id": "<|vision_pad|>",
    "image_token_id": "<|image_pad|>",
    "video_token_id": "<|video_pad|>",
}
# What is taken from the tokenizer's model; the preprocessor config comes with the shape.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json")
PROVENANCE_FILE = "zoomguard-dummy.json"


def is_dummy_model(model_dir: str | Path) -> bool:
    """Whether `model_dir` was assembled here (no weights: vLLM needs load_format=dummy, transformers a random
    initialisation, `random_transformers_model`)."""
    return (Path(model_dir) / PROVENANCE_FILE).is_file()


def random_transformers_model(model_dir: str | Path, dtype: str = "bfloat16", device: str = "cpu") -> Any:
    """The transformers model of a weight-free directory, initialised at random on `device`: what the naive
    baseline runs where vLLM runs load_format=dummy (from_pretrained would look for weights). Built on the
    device directly, so a 7B never passes through host memory in float32."""
    import torch
    from transformers import AutoConfig, Qwen2_5_VLForConditionalGeneration

    config = AutoConfig.from_pretrained(model_dir)
    torch_dtype = getattr(torch, dtype)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=torch_dtype)
    return model.eval()


def token_ids(tokenizer_json: dict[str, Any]) -> dict[str, int]:
    """Special token -> id, from a tokenizers tokenizer.json."""
    return {token["content"]: int(token["id"]) for token in tokenizer_json.get("added_tokens", [])}


def largest_token_id(tokenizer_json: dict[str, Any]) -> int:
    vocab = tokenizer_json.get("model", {}).get("vocab", {})
    return max([*vocab.values(), *token_ids(tokenizer_json).values()], default=-1)


def with_token_ids(config: dict[str, Any], ids: dict[str, int]) -> dict[str, Any]:
    """The config with every special-token field pointing at the tokenizer's ids (top level and text_config)."""
    missing = sorted({token for token in SPECIAL_TOKEN_FIELDS.values() if token not in ids})
    if missing:
        raise ConfigError(f"the tokenizer lacks special tokens Qwen2.5-VL needs: {', '.join(missing)}")
    out = json.loads(json.dumps(config))
    out.update({field: ids[token] for field, token in SPECIAL_TOKEN_FIELDS.items()})
    text = out.get("text_config")
    if isinstance(text, dict):  # the nested layout repeats some of them
        text.update({field: ids[token] for field, token in SPECIAL_TOKEN_FIELDS.items() if field in text})
    return out


def vocab_size(config: dict[str, Any]) -> int:
    return int(config.get("text_config", {}).get("vocab_size") or config["vocab_size"])


def assemble_dummy_model(config_dir: str | Path, out_dir: str | Path, tokenizer_from: str | Path | None = None) -> Path:
    """Write `out_dir`: config_dir's config.json (special-token ids rewritten) and preprocessor_config.json, the
    tokenizer, chat template and generation config of `tokenizer_from` (default: a tiny offline model built for
    the purpose), and zoomguard-dummy.json saying where each came from. No weights: load it with
    load_format=dummy. Returns out_dir."""
    source, out = Path(config_dir), Path(out_dir)
    if tokenizer_from is None:
        from zoomguard.detector.tiny_model import build_tiny_model

        with tempfile.TemporaryDirectory(prefix="zoomguard-tokenizer-") as tmp:
            return assemble_dummy_model(source, out, build_tiny_model(tmp))
    tokenizer_dir = Path(tokenizer_from)
    config = json.loads((source / "config.json").read_text())
    tokenizer = json.loads((tokenizer_dir / "tokenizer.json").read_text())
    largest = largest_token_id(tokenizer)
    if largest >= vocab_size(config):
        raise ConfigError(f"token id {largest} of {tokenizer_dir} is outside the model's {vocab_size(config)} rows")
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.safetensors"):  # a dummy directory never holds weights
        stale.unlink()
    (out / "config.json").write_text(json.dumps(with_token_ids(config, token_ids(tokenizer)), indent=2) + "\n")
    shutil.copyfile(source / "preprocessor_config.json", out / "preprocessor_config.json")
    for name in TOKENIZER_FILES:
        if (tokenizer_dir / name).is_file():
            shutil.copyfile(tokenizer_dir / name, out / name)
    (out / PROVENANCE_FILE).write_text(
        json.dumps(
            {
                "kind": "dummy-weights",
                "shape_from": str(source.resolve()),
                "tokenizer_from": str(tokenizer_dir.resolve()),
                "note": "no weights: load with load_format=dummy; text token counts are the tiny tokenizer's, "
                "image token counts the config's",
            },
            indent=2,
        )
        + "\n"
    )
    return out
