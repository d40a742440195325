"""The offline tiny checkpoint: deterministic, and loadable by transformers' processor and model classes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from zoomguard.detector.tiny_model import SPECIAL_TOKENS, TinyModelSpec, build_tiny_model


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_same_seed_same_bytes_other_seed_other_weights(tmp_path: Path) -> None:
    a = _digest(build_tiny_model(tmp_path / "a", TinyModelSpec(seed=1)))
    b = _digest(build_tiny_model(tmp_path / "b", TinyModelSpec(seed=1)))
    c = _digest(build_tiny_model(tmp_path / "c", TinyModelSpec(seed=2)))
    assert a == b
    assert a["model.safetensors"] != c["model.safetensors"]
    assert {
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "model.safetensors",
        "chat_template.jinja",
    } <= set(a)


def test_transformers_loads_it_and_runs_a_forward_pass(tiny_model: Path) -> None:
    import torch
    from PIL import Image
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    processor = AutoProcessor.from_pretrained(tiny_model)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_model)
    tokenizer = processor.tokenizer
    for token in SPECIAL_TOKENS:
        assert tokenizer.convert_tokens_to_ids(token) != tokenizer.unk_token_id
    assert model.config.image_token_id == tokenizer.convert_tokens_to_ids("<|image_pad|>")
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "real or not?"}]}]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n") and "<|vision_start|><|image_pad|><|vision_end|>" in text
    inputs = processor(text=[text], images=[Image.new("RGB", (112, 84), "red")], return_tensors="pt")
    # 112x84 -> 4x3 merged patches -> 12 image tokens expanded in place of the one placeholder
    assert int((inputs["input_ids"] == model.config.image_token_id).sum()) == 12
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape[-1] == model.config.text_config.vocab_size
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("digits", ["0123456789", "[12, 340, 5678, 9]"])
def test_digits_tokenise_one_by_one(tiny_model: Path, digits: str) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    pieces = tokenizer.convert_ids_to_tokens(tokenizer(digits)["input_ids"])
    assert all(len(p) == 1 for p in pieces if any(ch.isdigit() for ch in p))


@pytest.mark.parametrize("caps", [{}, {"explanation_max_chars": 1000, "finding_max_chars": 300}])
def test_answer_schemas_compile_against_a_real_tokenizer(tiny_model: Path, caps: dict[str, int]) -> None:
    """xgrammar refuses long regex repetitions only when compiling against a tokenizer (as vLLM does, and a
    server answers HTTP 500): the default and large caps must compile for both queries."""
    import json

    import xgrammar
    from transformers import AutoTokenizer

    from zoomguard.detector.settings import DetectorSettings
    from zoomguard.schemas.answers import ExamineAnswer, LocateAnswer, response_schema

    settings = DetectorSettings(**caps)  # type: ignore[arg-type]
    compiler = xgrammar.GrammarCompiler(
        xgrammar.TokenizerInfo.from_huggingface(AutoTokenizer.from_pretrained(tiny_model))
    )
    for answer in (LocateAnswer, ExamineAnswer):
        schema = response_schema(
            answer,
            max_regions=settings.max_regions,
            explanation_max_chars=settings.explanation_max_chars,
            finding_max_chars=settings.finding_max_chars,
            coordinate_max=14_167,
            charset=settings.answer_charset,
        )
        compiler.compile_json_schema(json.dumps(schema), any_whitespace=False)
