"""The Kafka push simulator: a local Tansu broker with one topic onto which an upstream system
"pushes" the municipality's consents (samtykker) as canonical Avro Envelopes.

``malformed_rate`` makes some records poison (undecodable bytes, the same records for a seed).
The broker keeps its log in memory: ``stop()`` loses it, and ``restart()`` brings up a fresh
broker on the same port and publishes the records again from offset 0.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable

from connectors.kafka.broker import Broker
from connectors.kafka.config import KafkaConfig
from connectors.kafka.producer import OutboxPublisher
from connectors.simulation import FaultConfig, Faults
from hub.domain import events as ev
from hub.synthetic.model import Municipality
from hub.synthetic.to_events import consent_events

TOPIC = "glasplade.push.consents"


class KafkaSimulator:
    name = "kafka"

    def __init__(self, municipality: Municipality, faults: Faults, topic: str = TOPIC,
                 partitions: int = 3):
        self.municipality = municipality
        self.faults = faults
        self.topic = topic
        self.partitions = partitions
        self.broker: Broker | None = None
        self._secret = secrets.token_bytes(32)

    @property
    def url(self) -> str:
        return f"kafka://{self.broker.bootstrap}" if self.broker else ""

    def events(self) -> list[ev.CanonicalEvent]:
        m = self.municipality
        return [e for c in m.consents for e in consent_events(c, m.as_of)]

    def start(self, port: int = 0) -> str:
        self.broker = Broker(port=port)
        self.broker.start()
        self.broker.create_topic(self.topic, self.partitions)
        self.publish(self.events())
        return self.broker.bootstrap

    def restart(self) -> str:
        assert self.broker is not None
        return self.start(self.broker.port)

    def publish(self, events: Iterable[ev.CanonicalEvent]) -> int:
        """Push events (records keyed by person; poison records where ``malformed``)."""
        assert self.broker is not None, "not started"
        publisher = OutboxPublisher(
            KafkaConfig(bootstrap_servers=self.broker.bootstrap, topic=self.topic),
            include_person=True, pseudonymize=self._key)
        good, n = [], 0
        try:
            for e in events:
                n += 1
                record_id = f"{e.source_record_id}/{e.source_version}"
                if self.faults.malformed(record_id):
                    publisher.send_raw(f"\x00poison:{record_id}".encode(),
                                       partition=n % self.partitions)
                else:
                    good.append(e)
            publisher.publish(good)
        finally:
            publisher.close()
        return n

    def _key(self, cpr: str) -> str:
        """The record key: a keyed hash of the person (the simulator's own key, not the hub's)."""
        return hmac.new(self._secret, cpr.encode(), hashlib.sha256).hexdigest()

    def stop(self) -> None:
        if self.broker is not None:
            self.broker.stop()

    def env(self) -> dict[str, str]:
        assert self.broker is not None, "not started"
        return {"KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap, "KAFKA_TOPIC": self.topic}


def simulator(municipality: Municipality, faults: FaultConfig | None = None) -> KafkaSimulator:
    """The registry's simulator factory."""
    return KafkaSimulator(municipality, Faults(faults or FaultConfig()))
