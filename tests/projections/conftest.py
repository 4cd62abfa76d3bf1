"""Fixtures for projection tests: a read-model engine on the same database as the store."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
import structlog

from projections.db import readmodel_engine
from projections.registry import build_projections
from projections.runner import ProjectionRunner

#: The read models this suite owns (the target-group projection has its own tests).
MODULES = ("projections.citizen_overview", "projections.case_history", "projections.access_log")


@pytest.fixture(autouse=True)
def _fresh_logging():
    """The CLI configures structlog onto the CliRunner's stream, closed after the test."""
    yield
    structlog.reset_defaults()


@pytest.fixture
def engine(store_url):
    e = readmodel_engine(store_url)
    yield e
    e.dispose()


def make_runner(store, engine, *, batch_size: int = 7, projections=None) -> ProjectionRunner:
    runner = ProjectionRunner(store, engine,
                              projections or build_projections(store.person_key, MODULES),
                              batch_size=batch_size)
    runner.prepare()
    return runner


@pytest.fixture
def runner(store, engine):
    return make_runner(store, engine)


def one_by_one_and_in_one_batch(runner: ProjectionRunner, engine: sa.Engine
                                ) -> tuple[dict[str, list[tuple]], dict[str, list[tuple]]]:
    """The runner's tables after the store's events applied in batches of one event, and after
    a rebuild in one batch (``dump`` of each)."""
    runner.batch_size = 1
    runner.run()
    one_by_one = dump(engine, runner.projections)
    runner.batch_size = 1000
    runner.rebuild()
    return one_by_one, dump(engine, runner.projections)


def dump(engine: sa.Engine, projections) -> dict[str, list[tuple]]:
    """Every row of every table of the projections, sorted (for equality checks)."""
    out = {}
    with engine.connect() as conn:
        for p in projections:
            for name, table in p.metadata.tables.items():
                rows = conn.execute(sa.select(table)).all()
                out[name] = sorted(tuple(repr(v) for v in r) for r in rows)
    return out
