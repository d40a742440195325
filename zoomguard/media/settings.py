"""Fetch settings: how image URLs from untrusted events may be fetched (no I/O here)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class FetchSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    max_bytes: int = Field(20 * 1024 * 1024, ge=1024, description="largest image body accepted")
    connect_timeout_s: float = Field(5.0, gt=0, description="TCP/TLS connect timeout")
    total_timeout_s: float = Field(30.0, gt=0, description="deadline for one attempt, redirects included")
    max_redirects: int = Field(5, ge=0, description="redirect hops followed (each one re-checked)")
    attempts: int = Field(4, ge=1, description="tries for transient failures before dead-lettering")
    backoff_s: float = Field(0.5, ge=0, description="first retry delay; doubles per attempt, with jitter")
    allowed_networks: list[str] = Field(
        default_factory=list,
        description="CIDRs allowed even though private/loopback (e.g. 10.0.0.0/8 for an internal CDN)",
    )
    allowed_ports: list[int] = Field(default_factory=list, description="ports besides 80/443 that may be used")
    user_agent: str = Field("zoomguard/0.1 (+content moderation)", description="User-Agent sent")
