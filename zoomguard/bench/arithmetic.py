"""What the hardware's arithmetic would allow: FLOPs per image from the model's shape and the work measured, over
the matmul peak measured on the device.

Why: images/s alone does not say whether a run is good; the same figure over the limit the arithmetic sets (peak
FLOP/s / FLOPs per image) says how much of the chip the pipeline turns into verdicts. The limit is an upper bound:
decoding is bound by memory bandwidth, not FLOPs, so a real engine stays well below it.

Shapes are read from a Hugging Face Qwen2.5-VL config.json, flat (the public Qwen2.5-VL-7B-Instruct layout) or with
a nested `text_config` (what newer transformers write). Everything but `measure_peak_flops` is pure arithmetic.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from zoomguard.detector.geometry import smart_resize


@dataclass(frozen=True)
class ModelShape:
    """The sizes the arithmetic needs: the language model's, then the vision tower's."""

    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tie_word_embeddings: bool
    vision_depth: int
    vision_hidden: int
    vision_intermediate: int
    out_hidden: int
    patch_size: int
    temporal_patch_size: int
    in_chans: int
    merge_size: int
    window_size: int  # pixels per side of a windowed-attention block's window
    full_attention_blocks: int  # vision blocks attending over the whole image (fullatt_block_indexes)


@dataclass(frozen=True)
class ParameterCounts:
    embedding: int
    decoder_layers: int  # attention, MLP and the two norms of every layer, plus the final norm
    lm_head: int  # 0 when tied to the embedding
    patch_embed: int
    vision_blocks: int
    merger: int

    @property
    def language(self) -> int:
        return self.embedding + self.decoder_layers + self.lm_head

    @property
    def vision(self) -> int:
        return self.patch_embed + self.vision_blocks + self.merger

    @property
    def total(self) -> int:
        return self.language + self.vision

    def to_json(self) -> dict[str, int]:
        return {**asdict(self), "language": self.language, "vision": self.vision, "total": self.total}


@dataclass(frozen=True)
class QueryCounts:
    """One query's measured work: its prompt, what the prefix cache served of it, and what it generated."""

    prompt_tokens: float
    cached_tokens: float = 0.0
    generated_tokens: float = 0.0

    @property
    def computed_tokens(self) -> float:
        return max(0.0, self.prompt_tokens - self.cached_tokens) + self.generated_tokens

    @property
    def mean_context(self) -> float:
        """Mean positions a computed token attends to. The computed tokens sit at positions cached+1 ..
        prompt+generated, one after another, and each attends to itself and everything before it (causal), so the
        mean is that range's midpoint. It ignores the prefix cache's block rounding (a few tokens)."""
        if self.computed_tokens <= 0:
            return 0.0
        start = min(self.cached_tokens, self.prompt_tokens)
        return (start + 1 + self.prompt_tokens + self.generated_tokens) / 2


def model_shape(config: Mapping[str, Any]) -> ModelShape:
    """The shape of a Qwen2.5-VL config.json (as json.load gives it), flat or with a nested text_config."""
    model_type = config.get("model_type")
    if model_type != "qwen2_5_vl":
        raise ValueError(f"the arithmetic knows Qwen2.5-VL only, this config is {model_type!r}")
    text = {**config, **config.get("text_config", {})}  # nested values win; flat configs have none
    vision = config["vision_config"]
    heads = int(text["num_attention_heads"])
    hidden = int(text["hidden_size"])
    tie = config.get("tie_word_embeddings", text.get("tie_word_embeddings", False))
    return ModelShape(
        layers=int(text["num_hidden_layers"]),
        hidden=hidden,
        heads=heads,
        kv_heads=int(text.get("num_key_value_heads", heads)),
        head_dim=int(text.get("head_dim") or hidden // heads),
        intermediate=int(text["intermediate_size"]),
        vocab=int(text["vocab_size"]),
        tie_word_embeddings=bool(tie),
        vision_depth=int(vision["depth"]),
        vision_hidden=int(vision["hidden_size"]),
        vision_intermediate=int(vision["intermediate_size"]),
        out_hidden=int(vision["out_hidden_size"]),
        patch_size=int(vision.get("patch_size", 14)),
        temporal_patch_size=int(vision.get("temporal_patch_size", 2)),
        in_chans=int(vision.get("in_chans", vision.get("in_channels", 3))),
        merge_size=int(vision.get("spatial_merge_size", 2)),
        window_size=int(vision.get("window_size", 112)),
        full_attention_blocks=len(vision.get("fullatt_block_indexes", ())),
    )


def parameter_counts(shape: ModelShape) -> ParameterCounts:
    """Parameters module by module, as Qwen2_5_VLForConditionalGeneration holds them: q/k/v with biases (k and v
    sized by the key-value heads), o without; a gated MLP without biases; RMSNorm weights. The vision blocks have
    a fused qkv and a gated MLP, all with biases; the patch embedding is a bias-free Conv3d; the merger is an
    RMSNorm and a two-layer MLP from merge_size² patches to the language model's width."""
    s = shape
    q_width, kv_width = s.heads * s.head_dim, s.kv_heads * s.head_dim
    attention = (s.hidden * q_width + q_width) + 2 * (s.hidden * kv_width + kv_width) + q_width * s.hidden
    mlp = 3 * s.hidden * s.intermediate
    layer = attention + mlp + 2 * s.hidden
    embedding = s.vocab * s.hidden
    v, vi = s.vision_hidden, s.vision_intermediate
    block = (v * 3 * v + 3 * v) + (v * v + v) + 2 * (v * vi + vi) + (vi * v + v) + 2 * v
    merged = v * s.merge_size**2
    merger = v + (merged * merged + merged) + (merged * s.out_hidden + s.out_hidden)
    return ParameterCounts(
        embedding=embedding,
        decoder_layers=s.layers * layer + s.hidden,
        lm_head=0 if s.tie_word_embeddings else embedding,
        patch_embed=s.in_chans * s.temporal_patch_size * s.patch_size**2 * v,
        vision_blocks=s.vision_depth * block,
        merger=merger,
    )


def image_patches(width: int, height: int, *, min_pixels: int, max_pixels: int, patch_size: int = 14,
                  merge_size: int = 2) -> int:  # fmt: skip
    """Patches the vision tower encodes for one image of this size: (H/14)*(W/14) after Qwen's smart resize, before
    the 2x2 merge (a quarter of them become image tokens in the prompt)."""
    h, w = smart_resize(height, width, patch_size * merge_size, min_pixels, max_pixels)
    return (h // patch_size) * (w // patch_size)


def flops_breakdown(shape: ModelShape, queries: Sequence[QueryCounts], vision_patches: float) -> dict[str, float]:
    """Forward FLOPs of one image's work, by part (each multiply-add counts 2):

    - lm_matmul = 2 x P_layers x T, where P_layers is the decoder layers' parameters and T the tokens computed
      (prompt tokens not served from the prefix cache plus generated tokens, summed over the queries);
    - lm_attention = 2 x 2 x layers x heads x head_dim x sum over queries of T_q x mean_context_q (QK^T and AV; the
      mean context of a query is `QueryCounts.mean_context`, the midpoint of its computed positions);
    - logits = 2 x vocab x hidden x G, G the generated tokens (vLLM computes logits only where it samples; the
      embedding lookup costs no matmul);
    - vision_matmul = 2 x (P_blocks + P_patch_embed) x patches + 2 x P_merger_mlp x patches / merge²;
    - vision_attention = 2 x 2 x vision_hidden x patches x context per block: the window's patches ((112/14)² = 64)
      in windowed blocks, every patch of the image in the full-attention ones (attention there is bidirectional).
    """
    params = parameter_counts(shape)
    tokens = sum(q.computed_tokens for q in queries)
    attended = sum(q.computed_tokens * q.mean_context for q in queries)
    generated = sum(q.generated_tokens for q in queries)
    merger_mlp = params.merger - shape.vision_hidden  # its RMSNorm is not a matmul
    window = min(vision_patches, (shape.window_size // shape.patch_size) ** 2)
    windowed_blocks = shape.vision_depth - shape.full_attention_blocks
    per_block_context = windowed_blocks * window + shape.full_attention_blocks * vision_patches
    return {
        "lm_matmul": 2.0 * params.decoder_layers * tokens,
        "lm_attention": 4.0 * shape.layers * shape.heads * shape.head_dim * attended,
        "logits": 2.0 * shape.vocab * shape.hidden * generated,
        "vision_matmul": 2.0 * (params.vision_blocks + params.patch_embed) * vision_patches
        + 2.0 * merger_mlp * vision_patches / shape.merge_size**2,
        "vision_attention": 4.0 * shape.vision_hidden * vision_patches * per_block_context,
    }


def flops_per_image(shape: ModelShape, queries: Sequence[QueryCounts], vision_patches: float) -> float:
    """Forward FLOPs of one image's work: the sum of `flops_breakdown` (its docstring gives the formula)."""
    return sum(flops_breakdown(shape, queries, vision_patches).values())


def arithmetic_limit(peak_flops: float, flops_per_image: float) -> float:
    """Images/s the arithmetic allows: the measured peak over the FLOPs one image needs."""
    if not flops_per_image > 0:
        raise ValueError(f"flops_per_image must be positive, got {flops_per_image}")
    return peak_flops / flops_per_image


def arithmetic_figures(
    shape: ModelShape,
    queries: Sequence[QueryCounts],
    vision_patches: float,
    *,
    peak_flops: float,
    device: str,
    dtype: str,
    measured_ips: float | None = None,
) -> dict[str, Any]:
    """The report's `arithmetic` section, JSON-ready: the peak, the FLOPs of one image (in all and by part), the
    limit they set, and, given the pipeline's images/s, the share of that limit it reached."""
    breakdown = flops_breakdown(shape, queries, vision_patches)
    per_image = sum(breakdown.values())
    limit = arithmetic_limit(peak_flops, per_image)
    return {
        "device": device,
        "dtype": dtype,
        "peak_flops": peak_flops,
        "parameters": parameter_counts(shape).to_json(),
        "work_per_image": {
            "queries": [asdict(query) for query in queries],
            "lm_tokens_computed": sum(query.computed_tokens for query in queries),
            "vision_patches": vision_patches,
        },
        "flops_per_image": per_image,
        "flops_breakdown": breakdown,
        "limit_ips": limit,
        "measured_ips": measured_ips,
        "share_of_limit": None if measured_ips is None else measured_ips / limit,
    }


def measure_peak_flops(device: str, dtype: str, seconds: float = 2.0) -> float:
    """The matmul peak of this device in FLOP/s: square matrices multiplied in `dtype` ("bfloat16", "float32", ...),
    the best of several timed rounds after a warm-up, CUDA synchronised around each round. 8192² on a GPU (large
    enough to reach its tensor-core peak), 1024² on a CPU (about two seconds in all)."""
    import torch

    torch_dtype = getattr(torch, dtype)
    cuda = device.startswith("cuda")
    size = 8192 if cuda else 1024
    a = torch.randn(size, size, device=device).to(torch_dtype)
    b = torch.randn(size, size, device=device).to(torch_dtype)

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    with torch.inference_mode():
        torch.matmul(a, b)  # warm-up: library start, kernel selection, clocks, caches
        sync()
        started = time.perf_counter()
        torch.matmul(a, b)
        sync()
        first = time.perf_counter() - started
        per_round = max(1, math.ceil(seconds / 8 / max(first, 1e-6)))  # about 8 rounds in `seconds`
        best = 0.0
        deadline = time.perf_counter() + seconds
        while True:
            sync()
            started = time.perf_counter()
            for _ in range(per_round):
                torch.matmul(a, b)
            sync()
            elapsed = time.perf_counter() - started
            best = max(best, 2.0 * size**3 * per_round / elapsed)
            if time.perf_counter() >= deadline:
                return best
