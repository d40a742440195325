"""`train sft` and `train grpo` for real: TRL + peft on the tiny Qwen2.5-VL, on CPU, a few steps each."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from zoomguard.app.config import Settings, load_settings
from zoomguard.cli import main
from zoomguard.dataset.conversations import ConversationSpec, build_samples
from zoomguard.dataset.records import TrainingRecord, write_dataset
from zoomguard.detector.engines.base import Turn
from zoomguard.detector.engines.vllm_inprocess import _chat_messages
from zoomguard.detector.tiny_model import TINY_DETECTOR_SETTINGS
from zoomguard.samples import encode, make_image
from zoomguard.training.grpo import train_grpo
from zoomguard.training.sft import train_sft
from zoomguard.training.trl_common import ADAPTER_DIR, SUMMARY_FILE, TrainJob, check_model

SMALL_LORA = {"lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.0, "save_steps": 1000, "logging_steps": 1}


def record(seed: int, label: str, *, boxes: bool = True, size: tuple[int, int] = (160, 120)) -> TrainingRecord:
    data = encode(make_image(seed, size), "PNG")
    return TrainingRecord(
        event_id=f"evt-{seed}",
        label=label,  # type: ignore[arg-type]
        image_bytes=data,
        image_sha256=hashlib.sha256(data).hexdigest(),
        width=size[0],
        height=size[1],
        boxes=[(10, 10, 70, 60), (90, 50, 150, 110)] if boxes else [],
        findings=["six fingers", "melted text"] if boxes else [],
        explanation="A real photo." if label == "real" else "Six fingers and melted text.",
        source="test",
    )


def dataset(path: Path, records: list[TrainingRecord]) -> Path:
    write_dataset(path, records, {"source": "test"})
    return path


def settings(**training: Any) -> Settings:
    return load_settings(environ={}, overrides={"detector": TINY_DETECTOR_SETTINGS, "training": training})


def adapter_tensors(directory: Path) -> dict[str, torch.Tensor]:
    return load_file(str(directory / "adapter_model.safetensors"))


def assert_loadable_and_effective(tiny_model: Path, adapter: Path) -> None:
    """peft loads the adapter onto the base model, and it changes the model's output."""
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    base = AutoModelForImageTextToText.from_pretrained(tiny_model, dtype=torch.float32)
    ids = torch.tensor([[5, 17, 42, 99, 7]])
    with torch.no_grad():
        before = base(input_ids=ids).logits.clone()
        tuned = PeftModel.from_pretrained(base, str(adapter))
        after = tuned(input_ids=ids).logits
    assert not torch.allclose(before, after)


def test_samples_render_like_serving_and_match_the_processor(tiny_model: Path) -> None:
    """The training prompt renders to the serving prompt text, and the processor finds one image per placeholder."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_model)
    s = settings().detector
    spec = ConversationSpec(check_model(str(tiny_model), "auto"), s.min_pixels, s.max_pixels, s.max_regions, s.crops)
    locate, examine = build_samples([record(1, "ai_generated")], spec)
    first = Turn("user", locate.prompt[0]["content"][-1]["text"], (locate.images[0],))
    served = _chat_messages(
        (
            first,
            Turn("assistant", examine.prompt[1]["content"][0]["text"]),
            Turn("user", examine.prompt[2]["content"][-1]["text"], tuple(examine.images[1:])),
        )
    )
    render = processor.apply_chat_template
    assert render(examine.prompt, tokenize=False, add_generation_prompt=True) == render(
        served, tokenize=False, add_generation_prompt=True
    )
    text = render(examine.prompt, tokenize=False, add_generation_prompt=True)
    assert text.count("<|vision_start|><|image_pad|><|vision_end|>") == len(examine.images) == 3
    batch = processor(text=[text], images=examine.images, return_tensors="pt")
    assert batch["image_grid_thw"].shape[0] == 3
    merge = processor.image_processor.merge_size**2
    image_pad = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert int((batch["input_ids"] == image_pad).sum()) == int(batch["image_grid_thw"].prod(dim=1).sum()) // merge


def test_sft_steps_train_the_language_model_lora_and_write_a_loadable_adapter(tiny_model: Path, tmp_path: Path) -> None:
    data = dataset(tmp_path / "data", [record(1, "ai_generated"), record(2, "real", boxes=False)])
    job = TrainJob(data, str(tiny_model), tmp_path / "run")
    sft_settings = settings(max_steps=2, per_device_batch_size=2, sft_learning_rate=1e-3, **SMALL_LORA)
    result = train_sft(sft_settings.training, sft_settings.detector, job)

    tensors = adapter_tensors(result.adapter)
    assert tensors and all("language_model.layers" in name for name in tensors)  # vision tower untouched
    lora_b = [t for name, t in tensors.items() if "lora_B" in name]
    assert len(lora_b) == 14 and all(t.abs().sum() > 0 for t in lora_b)  # peft starts every B at zero
    assert_loadable_and_effective(tiny_model, result.adapter)
    summary = json.loads((tmp_path / "run" / SUMMARY_FILE).read_text())
    assert summary["kind"] == "sft" and summary["steps"] == 2 and summary["final_loss"] > 0
    assert summary["dataset"]["records"] == 2 and summary["dataset"]["samples"] == {"locate": 2, "examine": 2}
    assert summary["base_model"] == str(tiny_model) and summary["adapter"] == str(tmp_path / "run" / ADAPTER_DIR)
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("checkpoint-*")) == ["checkpoint-2"]


def test_grpo_steps_from_an_sft_adapter_change_the_lora_weights(tiny_model: Path, tmp_path: Path) -> None:
    """SFT first teaches the answer (so sampled answers earn different rewards), then GRPO moves the adapter:
    with all-equal rewards a group has no advantage and GRPO would not change anything. Six one-group steps
    at a low temperature: a step whose four answers all score the same is likely, six in a row are not
    (weights changed for every seed from 0 to 6 when this was written)."""
    data = dataset(tmp_path / "data", [record(3, "real", boxes=False)])
    common = {**SMALL_LORA, "stages": ["examine"]}
    sft_settings = settings(max_steps=40, per_device_batch_size=1, sft_learning_rate=1e-2, **common)
    sft = train_sft(sft_settings.training, sft_settings.detector, TrainJob(data, str(tiny_model), tmp_path / "sft"))
    grpo_settings = settings(
        max_steps=6, per_device_batch_size=4, num_generations=4, max_completion_length=40, temperature=0.2,
        grpo_learning_rate=1e-3, **common,
    )  # fmt: skip
    grpo_job = TrainJob(data, str(tiny_model), tmp_path / "grpo", init_adapter=sft.adapter)
    grpo = train_grpo(grpo_settings.training, grpo_settings.detector, grpo_job)

    before, after = adapter_tensors(sft.adapter), adapter_tensors(grpo.adapter)
    assert before.keys() == after.keys()
    changed = [name for name in before if not torch.equal(before[name], after[name])]
    assert changed, "GRPO left every LoRA tensor as SFT wrote it"
    assert grpo.summary["kind"] == "grpo" and grpo.summary["steps"] == 6
    assert grpo.summary["init_adapter"] == str(sft.adapter) and grpo.summary["final_reward"] is not None
    assert_loadable_and_effective(tiny_model, grpo.adapter)


def test_cli_train_grpo_runs_both_stages(tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = dataset(tmp_path / "data", [record(4, "ai_generated"), record(5, "real", boxes=False)])
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"detector": TINY_DETECTOR_SETTINGS, "training": {"logging_steps": 1}}))
    out = tmp_path / "run"
    argv = ["train", "grpo", "--dataset", str(data), "--model", str(tiny_model), "--output", str(out)]
    argv += ["--config", str(config), "--max-steps", "2", "--batch-size", "2", "--num-generations", "2"]
    argv += ["--max-completion-length", "16", "--lora-r", "4", "--save-steps", "1", "--seed", "3", "--lr", "0.002"]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["kind"] == "grpo" and printed["steps"] == 2 and Path(printed["adapter"]).is_dir()
    summary = json.loads((out / SUMMARY_FILE).read_text())
    assert summary["settings"]["lora_r"] == 4 and summary["settings"]["num_generations"] == 2
    assert summary["settings"]["grpo_learning_rate"] == 0.002 and summary["settings"]["sft_learning_rate"] == 2e-5
    assert summary["settings"]["seed"] == 3 and summary["dataset"]["samples"] == {"locate": 2, "examine": 2}
    assert (out / "adapter" / "adapter_config.json").is_file()
    assert sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]


@pytest.mark.parametrize(
    ("case", "code", "message"),
    [
        ("empty", 1, "has no training records"),
        ("missing", 1, "no train shards"),
        ("not_qwen", 2, "does not look like a Qwen2.5-VL-style model"),
        ("bad_adapter", 2, "is not a peft adapter"),
        ("broken_image", 1, "record evt-6"),
        ("groups", 2, "must be divisible by num_generations"),
    ],
)
def test_cli_train_refuses_bad_inputs_clearly(
    case: str, code: int, message: str, tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    model = str(tiny_model)
    extra: list[str] = []
    if case == "empty":
        dataset(data, [record(6, "real").model_copy(update={"split": "test"})])
    elif case == "not_qwen":
        dataset(data, [record(6, "real")])
        model = str(tmp_path / "llama")
        Path(model).mkdir()
        (Path(model) / "config.json").write_text(json.dumps({"model_type": "llama"}))
    elif case == "groups":
        dataset(data, [record(6, "real")])
        extra = ["--batch-size", "3", "--num-generations", "2"]
    elif case == "broken_image":
        dataset(data, [record(6, "real").model_copy(update={"image_bytes": b"GIF89a-not-really"})])
    elif case == "bad_adapter":
        dataset(data, [record(6, "real")])
        extra = ["--init-adapter", str(tmp_path)]
    method = "grpo" if case == "groups" else "sft"
    argv = ["train", method, "--dataset", str(data), "--model", model, "--output", str(tmp_path / "run"), *extra]
    assert main(argv) == code
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run" / ADAPTER_DIR).exists()


def test_lora_targets_are_plain_names_matched_only_inside_decoder_layers() -> None:
    import re

    from zoomguard.errors import ConfigError

    pattern = settings(lora_target_modules=["q_proj", "down_proj"]).training.lora_target_regex()
    assert re.fullmatch(pattern, "model.language_model.layers.11.self_attn.q_proj")
    assert re.fullmatch(pattern, "model.layers.0.mlp.down_proj")  # transformers 4.x naming
    assert not re.fullmatch(pattern, "model.visual.blocks.0.mlp.down_proj")
    assert not re.fullmatch(pattern, "model.language_model.layers.0.self_attn.v_proj")
    with pytest.raises(ConfigError, match="plain module names"):
        settings(lora_target_modules=[".*"])
