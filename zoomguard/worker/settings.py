"""Worker settings: the in-flight window, commits, retries, routing and the model-update follower."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class WorkerSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    max_in_flight: int = Field(128, ge=1, description="events processed at once (the engine batches them)")
    low_water: int = Field(64, ge=0, description="resume polling when in-flight events drop to this")
    max_event_bytes: int = Field(
        15 * 1024 * 1024, ge=1024, description="input records larger than this are dead-lettered"
    )
    commit_interval_s: float = Field(1.0, gt=0, description="how often finished offsets are committed")
    drain_timeout_s: float = Field(30.0, ge=0, description="SIGTERM: time allowed to finish in-flight events")
    rebalance_drain_s: float = Field(10.0, ge=0, description="on revoke: time allowed to finish those partitions")
    retry_initial_s: float = Field(0.5, gt=0, description="first retry delay for engine / broker faults")
    retry_max_s: float = Field(30.0, gt=0, description="longest retry delay (exponential backoff cap)")
    unreadable_attempts: int = Field(
        3, ge=1, description="polls that fail to read a fetched batch before its offset is found and dead-lettered"
    )
    audit_rate: float = Field(
        0.02, ge=0, le=1, description="share of confident verdicts also sent to review (unbiased precision audit)"
    )
    review_thumbnail_side: int = Field(
        1024, ge=64, description="inline images are attached to review tasks as JPEG thumbnails this size"
    )
    cache_entries: int = Field(10000, ge=0, description="verdict cache by image sha256 (0 disables)")
    follow_model_updates: bool = Field(
        True, description="follow topics.model_updates: switch to each promoted model version without a restart"
    )
    model_updates_catchup_s: float = Field(
        30.0, ge=0, description="on start, time allowed to read topics.model_updates before serving"
    )
    max_model_update_bytes: int = Field(
        1024 * 1024, ge=1024, description="ModelUpdate records larger than this are ignored"
    )
    freeze_startup_heap: bool = Field(
        True,
        description="once started (engine up, bank loaded), exempt the objects that exist then from Python's full "
        "garbage collections (gc.freeze, as vLLM does in its own processes): a full collection then scans what "
        "serving allocates, not the libraries and model state, and stops the worker for far less",
    )

    @model_validator(mode="after")
    def _check_window(self) -> WorkerSettings:
        if self.low_water >= self.max_in_flight:
            raise ValueError("worker.low_water must be below worker.max_in_flight")
        return self
