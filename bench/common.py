"""Shared helpers for benchmarks: fresh stores, timing, printing."""

from __future__ import annotations

import os
import secrets
import time
import uuid
from contextlib import contextmanager

import psycopg

from hub.bootstrap import open_recorder
from hub.personal_data import PayloadCipher, Pseudonymizer
from hub.store.eventstore import EventStore

PG_ADMIN = os.environ.get("GLASPLADE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def make_store(url: str) -> EventStore:
    return EventStore(open_recorder(url), Pseudonymizer(secrets.token_bytes(32)),
                      PayloadCipher(secrets.token_bytes(32)))


@contextmanager
def pg_database(prefix: str = "glasplade_bench"):
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:>12,.0f}/s"
