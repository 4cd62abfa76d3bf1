"""Settings of the Kafka push connector (``KAFKA_<KEY>`` env or ``[components.kafka]``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from connectors.kafka.codec import FRAMINGS, Framing
from hub.config import ConfigError, Settings


@dataclass(frozen=True)
class KafkaConfig:
    bootstrap_servers: str
    """host:port[,host:port...] of the brokers."""
    topic: str
    partitions: tuple[int, ...] = ()
    """Partitions this process reads; empty: all partitions of the topic (discovered)."""
    framing: Framing = "schemaless"
    schema_id: int | None = None
    """With ``confluent`` framing: the registry id records must carry (None: any id)."""
    poll_timeout_ms: int = 1000
    """How long one poll waits for records; an empty poll ends a pass (``read`` returns)."""
    max_records: int = 500
    """Records per poll, hence per batch (one store transaction)."""
    request_timeout_ms: int = 5000
    client_options: tuple[tuple[str, Any], ...] = ()
    """Extra kafka-python options (security_protocol, sasl_*, ssl_*) for a real cluster."""

    @classmethod
    def from_settings(cls, settings: Settings, component: str = "kafka") -> KafkaConfig:
        def get(key: str, default: Any = None) -> Any:
            return settings.component(component, key, default)

        servers, topic = get("bootstrap_servers"), get("topic")
        if not servers or not topic:
            raise ConfigError(f"{component}: bootstrap_servers and topic must be configured "
                              f"({component.upper()}_BOOTSTRAP_SERVERS, {component.upper()}_TOPIC)")
        framing = get("framing", "schemaless")
        if framing not in FRAMINGS:
            raise ConfigError(f"{component}: framing must be one of {FRAMINGS}, got {framing!r}")
        parts = get("partitions", "")
        if isinstance(parts, str):
            parts = [p for p in parts.split(",") if p.strip()]
        options = []
        for key in ("security_protocol", "sasl_mechanism", "sasl_plain_username",
                    "sasl_plain_password", "ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            value = get(key)
            if value is not None:
                options.append((key, value))
        schema_id = get("schema_id")
        return cls(
            bootstrap_servers=str(servers), topic=str(topic),
            partitions=tuple(int(p) for p in parts), framing=framing,
            schema_id=int(schema_id) if schema_id is not None else None,
            poll_timeout_ms=int(get("poll_timeout_ms", 1000)),
            max_records=int(get("max_records", 500)),
            request_timeout_ms=int(get("request_timeout_ms", 5000)),
            client_options=tuple(options),
        )

    def client_kwargs(self) -> dict[str, Any]:
        """Options every kafka-python client of this connector gets."""
        return {"bootstrap_servers": self.bootstrap_servers.split(","),
                "request_timeout_ms": self.request_timeout_ms,
                "bootstrap_timeout_ms": self.request_timeout_ms,
                "reconnect_backoff_max_ms": 1000,
                **dict(self.client_options)}
