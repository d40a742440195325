"""Kafka settings: the connection every process shares, and the pipeline's topic names."""

from __future__ import annotations

from typing import Any, Literal

from kafka import codec
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

# kafka-python's checks (pure): is the library for this codec importable?
CODEC_AVAILABLE = {"gzip": codec.has_gzip, "snappy": codec.has_snappy, "lz4": codec.has_lz4, "zstd": codec.has_zstd}


class TopicSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    input: str = Field("images.submitted", description="ImageEvents in")
    verdicts: str = Field("images.verdicts", description="one VerdictEvent per processable input")
    review: str = Field("images.review", description="ReviewRequests for humans")
    dead_letter: str = Field("images.dlq", description="DeadLetters: input that can never be processed")
    review_decisions: str = Field("images.review.decisions", description="ReviewDecisions from reviewers' tools")
    model_updates: str = Field("models.updates", description="ModelUpdates: promoted models workers switch to")
    known: str = Field(
        "images.known", description="the known-content bank: a compacted topic, one record per known image"
    )


class KafkaSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    bootstrap_servers: str = Field("localhost:9092", description="comma-separated host:port list")
    group_id: str = Field("zoomguard", description="consumer group; workers in one group share partitions")
    client_id: str = Field("zoomguard", description="client id sent to the brokers")
    auto_offset_reset: Literal["earliest", "latest"] = Field(
        "earliest", description="where a new group starts: earliest, so no upload is silently skipped"
    )
    session_timeout_ms: int = Field(45000, ge=1000, description="group session timeout (Kafka's default)")
    heartbeat_interval_ms: int = Field(3000, ge=100, description="heartbeat interval")
    max_poll_interval_ms: int = Field(300000, ge=1000, description="max time between polls before eviction")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="transport security"
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = Field(
        None, description="SASL mechanism when security_protocol uses SASL"
    )
    sasl_username: str | None = Field(None, description="SASL user")
    sasl_password: SecretStr | None = Field(None, description="SASL password (never logged)")
    ssl_cafile: str | None = Field(None, description="CA bundle for SSL")
    ssl_certfile: str | None = Field(None, description="client certificate for mutual TLS")
    ssl_keyfile: str | None = Field(None, description="client key for mutual TLS")
    ssl_password: SecretStr | None = Field(None, description="password of the client key (never logged)")
    compression_type: Literal["gzip", "snappy", "lz4", "zstd"] | None = Field(
        None, description="output compression (input in any codec is always read); its library is checked at start-up"
    )
    linger_ms: int = Field(5, ge=0, description="producer batching delay")
    max_request_size: int = Field(4 * 1024 * 1024, ge=1024, description="largest output record the producer sends")
    max_partition_fetch_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="per-partition fetch size; must exceed the largest input record"
    )
    request_timeout_ms: int = Field(30000, ge=1000, description="broker request timeout")

    @field_validator("compression_type", mode="before")
    @classmethod
    def _none_is_unset(cls, value: Any) -> Any:
        """Kafka's own spelling of no compression."""
        return None if isinstance(value, str) and value.lower() == "none" else value

    @model_validator(mode="after")
    def _check_codec(self) -> KafkaSettings:
        """Refuse at start-up, not on the first send: a missing codec library fails every batch."""
        if self.compression_type is not None and not CODEC_AVAILABLE[self.compression_type]():
            raise ValueError(
                f"compression_type {self.compression_type} needs its codec library: "
                f"pip install 'kafka-python[{self.compression_type}]'"
            )
        return self

    @model_validator(mode="after")
    def _check_security(self) -> KafkaSettings:
        if self.security_protocol.startswith("SASL") and self.sasl_mechanism is None:
            raise ValueError("security_protocol SASL_* needs kafka.sasl_mechanism (and user/password)")
        if self.sasl_mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512") and not (
            self.sasl_username and self.sasl_password
        ):
            raise ValueError(f"sasl_mechanism {self.sasl_mechanism} needs kafka.sasl_username and sasl_password")
        return self

    def common_config(self) -> dict[str, Any]:
        """kafka-python keyword arguments shared by consumer, producer and admin (secrets unwrapped here only)."""
        config: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers.split(","),
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
            "request_timeout_ms": self.request_timeout_ms,
        }
        if self.sasl_mechanism:
            config["sasl_mechanism"] = self.sasl_mechanism
            if self.sasl_username:
                config["sasl_plain_username"] = self.sasl_username
            if self.sasl_password:
                config["sasl_plain_password"] = self.sasl_password.get_secret_value()
        for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            if getattr(self, key):
                config[key] = getattr(self, key)
        if self.ssl_password:
            config["ssl_password"] = self.ssl_password.get_secret_value()
        return config
