"""Settings of the review side: Label Studio export/import, the webhook receiver, and dataset collection."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class ReviewSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    dataset_dir: str = Field("data/reviewed", description="where `zoomguard collect` writes the dataset")
    test_fraction: float = Field(0.2, ge=0.0, lt=1.0, description="held-out share (stable per image sha256)")
    export_timeout_s: float = Field(
        300.0, gt=0, description="`review export` fails if the review topic was not read to its end within this"
    )
    import_max_bytes: int = Field(
        256 * 1024 * 1024, ge=1024, description="largest Label Studio export file `review import` reads"
    )
    ack_timeout_s: float = Field(
        30.0, gt=0, description="how long import and the webhook wait for the broker to acknowledge a decision"
    )
    webhook_host: str = Field("127.0.0.1", description="webhook listen address (0.0.0.0 in a container)")
    webhook_port: int = Field(8088, ge=1, le=65535, description="webhook listen port")
    webhook_path: str = Field("/label-studio/webhook", description="URL path Label Studio posts its events to")
    webhook_token: SecretStr | None = Field(
        None, description="shared secret the webhook requires in `webhook_token_header`; unset: no check"
    )
    webhook_token_header: str = Field(
        "X-Zoomguard-Token", description="request header carrying the token (set it in Label Studio's webhook headers)"
    )
    webhook_max_body_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, description="larger webhook bodies are refused with 413 (tasks may carry thumbnails)"
    )
    webhook_read_timeout_s: float = Field(10.0, gt=0, description="a webhook client that stalls this long is dropped")
    collect_timeout_s: float = Field(
        600.0, gt=0, description="`collect` fails if the decisions or review topic was not read to its end within this"
    )
    collect_record_timeout_s: float = Field(
        30.0, gt=0, description="`collect`: time allowed to read one original input record (assign + seek)"
    )
    collect_concurrency: int = Field(8, ge=1, le=256, description="`collect`: images fetched and decoded at once")

    @field_validator("webhook_path")
    @classmethod
    def _absolute_path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("review.webhook_path must start with '/'")
        return value
