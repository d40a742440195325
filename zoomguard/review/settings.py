"""Settings of the review side: Label Studio export/import, the webhook receiver, and dataset collection."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator


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
        30.0,
        gt=0,
        description="how long `review import`, and the webhook's spool flusher per decision, wait for the broker's ack",
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
    webhook_spool_dir: str = Field(
        "data/webhook-spool",
        description="where the webhook keeps accepted decisions until the broker acknowledged them; one process per"
        " directory; in Kubernetes a persistent volume (an emptyDir loses them with the pod)",
    )
    webhook_spool_max_files: int = Field(
        100_000, ge=1, description="spooled requests beyond this are refused with 507 (the broker is down too long)"
    )
    webhook_spool_max_bytes: int = Field(
        256 * 1024 * 1024, ge=1024, description="spool size beyond which requests are refused with 507"
    )
    webhook_flush_backoff_s: float = Field(
        0.5, gt=0, description="wait after a failed spool flush; doubled after each further failure"
    )
    webhook_flush_backoff_max_s: float = Field(30.0, gt=0, description="the longest wait between spool flush attempts")
    webhook_stop_flush_s: float = Field(
        10.0, ge=0, description="on SIGTERM, how long the spool may still be published; the rest waits for the next run"
    )
    collect_timeout_s: float = Field(
        600.0, gt=0, description="`collect` fails if the decisions or review topic was not read to its end within this"
    )
    collect_record_timeout_s: float = Field(
        30.0, gt=0, description="`collect`: time allowed to read one original input record (assign + seek)"
    )
    collect_concurrency: int = Field(8, ge=1, le=256, description="`collect`: images fetched and decoded at once")

    @model_validator(mode="after")
    def _backoff_order(self) -> ReviewSettings:
        if self.webhook_flush_backoff_max_s < self.webhook_flush_backoff_s:
            raise ValueError("review.webhook_flush_backoff_max_s must not be below review.webhook_flush_backoff_s")
        return self

    @field_validator("webhook_path")
    @classmethod
    def _absolute_path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("review.webhook_path must start with '/'")
        return value
