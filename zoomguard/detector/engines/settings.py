"""Engine settings: which model, where it runs, and the vLLM knobs that matter for serving it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

# The ranks vLLM accepts for max_lora_rank (vllm.config.lora.MaxLoRARanks).
LoraRank = Literal[1, 8, 16, 32, 64, 128, 256, 320, 512]


class EngineSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field("", description="local checkpoint directory or hub id (Qwen/Qwen2.5-VL-7B-Instruct)")
    model_version: str = Field("", description="version stamped on verdicts; default: derived from the checkpoint")
    mode: Literal["in_process", "server"] = Field(
        "in_process",
        description="in_process: vLLM's async engine here; server: vLLM OpenAI-compatible servers",
    )
    # in-process vLLM
    dtype: str = Field("auto", description="vLLM dtype (auto, bfloat16, float16, float32)")
    max_model_len: int = Field(8192, ge=512, description="context length; must fit the image tokens of both queries")
    gpu_memory_utilization: float = Field(0.9, gt=0.0, le=1.0, description="share of GPU memory vLLM may take")
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs per engine (tensor parallelism)")
    max_num_seqs: int = Field(256, ge=1, description="requests the engine batches at once")
    enforce_eager: bool = Field(False, description="skip CUDA graphs (faster start, slower steps)")
    enable_prefix_caching: bool = Field(True, description="reuse Query 1's KV cache for Query 2")
    load_format: str = Field("auto", description="'dummy' loads random weights from a real config (benchmarks)")
    seed: int = Field(0, description="engine seed")
    cpu_kvcache_gib: int | None = Field(
        None, ge=1, description="CPU builds only: KV cache GiB (VLLM_CPU_KVCACHE_SPACE; default 2 when unset)"
    )
    structured_outputs_backend: Literal["xgrammar", "guidance"] = Field(
        "xgrammar", description="grammar backend for the JSON answers"
    )
    mm_processor_cache_gb: float = Field(
        0.5,
        ge=0,
        description="vLLM's processed-image cache (GiB), held in this process and again in the engine core; it "
        "fills with never-repeated uploads up to this bound (vLLM's default, 4, looks like a leak). A hit only "
        "saves Query 2 re-running the image processor on the CPU; 0 disables it",
    )
    engine_args: dict[str, Any] = Field(
        default_factory=dict, description="extra vLLM AsyncEngineArgs, passed through unchanged"
    )
    # LoRA adapters (both modes)
    lora_adapter: str = Field(
        "", description="LoRA adapter directory (peft format) served from the start; empty: the base weights"
    )
    lora_version: str = Field(
        "", description="version stamped on verdicts while lora_adapter is served; default: derived from its files"
    )
    enable_lora: bool = Field(
        False,
        description="in_process: start vLLM able to load LoRA adapters at runtime (switch without restart); "
        "when off, the first adapter restarts the engine with LoRA on",
    )
    max_lora_rank: LoraRank = Field(16, description="largest LoRA rank the engine accepts (vLLM max_lora_rank)")
    max_loras: int = Field(
        2, ge=1, description="adapters in one batch; 2 lets requests on the old and the new version overlap"
    )
    # server mode
    server_urls: list[str] = Field(
        default_factory=list, description="base URLs of vLLM OpenAI-compatible servers (http://host:8000)"
    )
    served_model_name: str = Field("", description="model name the servers expose; default: ask /v1/models")
    api_key: SecretStr | None = Field(None, description="bearer token for the servers (never logged)")
    request_timeout_s: float = Field(120.0, gt=0, description="per-request timeout in server mode")
    image_encoding: Literal["png", "jpeg"] = Field(
        "png", description="how images travel to servers as data URIs (png is lossless)"
    )
    endpoint_cooldown_s: float = Field(5.0, ge=0, description="how long a failing server is skipped")
