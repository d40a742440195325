"""Settings of `zoomguard annotate`: the teacher model (a vLLM OpenAI-compatible server) and its prompt knobs."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator


class AnnotateSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    server_urls: list[str] = Field(
        default_factory=list, description="teacher vLLM OpenAI-compatible servers; empty: engine.server_urls"
    )
    model: str = Field("", description="the teacher's served model name; empty: ask the server's /v1/models")
    model_family: str = Field(
        "auto",
        description="teacher family for box coordinates: qwen2_5_vl, qwen2_vl, qwen3_vl, or auto (from the name)",
    )
    api_key: SecretStr | None = Field(None, description="bearer token for the teacher servers (never logged)")
    concurrency: int = Field(16, ge=1, le=1024, description="teacher requests in flight at once")
    request_timeout_s: float = Field(300.0, gt=0, description="per-request timeout")
    max_tokens: int = Field(1024, ge=64, description="generation cap of one teacher answer")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="teacher sampling temperature")
    max_regions: int = Field(6, ge=0, le=32, description="regions the teacher may mark per image (schema maxItems)")
    min_regions: int = Field(
        0, ge=0, le=32, description="regions the teacher must mark (schema minItems); >0 forces grounded boxes"
    )
    regions_for_real: bool = Field(
        True, description="also ask for regions on real images (the hard-to-forge detail that shows it is real)"
    )
    explanation_max_chars: int = Field(1000, ge=16, description="schema maxLength of the teacher's explanation")
    finding_max_chars: int = Field(160, ge=8, description="schema maxLength of one region's finding")
    min_pixels: int = Field(56 * 56, ge=28 * 28, description="smallest image size sent to the teacher (pixels)")
    max_pixels: int = Field(28 * 28 * 1280, ge=28 * 28, description="largest image size sent to the teacher (pixels)")
    max_box_fraction: float = Field(
        0.5, gt=0.0, le=1.0, description="teacher boxes covering more of the image than this are dropped (as the paper)"
    )
    cache_file: str = Field(
        "teacher-annotations.jsonl",
        description="teacher answers kept in the dataset directory, reused after `collect` rewrites the dataset",
    )

    @model_validator(mode="after")
    def _check_pixels(self) -> AnnotateSettings:
        if self.min_pixels > self.max_pixels:
            raise ValueError("annotate.min_pixels must not exceed annotate.max_pixels")
        if self.min_regions > self.max_regions:
            raise ValueError("annotate.min_regions must not exceed annotate.max_regions")
        return self
