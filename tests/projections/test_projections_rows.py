"""Pieces of the rebuild's fast path: the Bloom filter's bulk add and split agree with its
membership test, COPY value tuples follow the column order, the case history's COPY columns
are its table's, and a batch's pause of garbage collection ends with the batch."""

from __future__ import annotations

import gc

import pytest

from projections import case_history as ch
from projections.rows import SeenKeys, _split, row_values
from projections.runner import ProjectionError, ProjectionRunner
from tests.projections import scenario as sc
from tests.projections.conftest import make_runner
from tests.projections.test_runner import Explodes


def test_keys_added_in_bulk_are_never_reported_fresh():
    seen = SeenKeys(bits=1 << 12)  # small: false positives happen, false negatives must not
    added = [f"person-{i}" for i in range(0, 3000, 3)] + [("pathway", i) for i in range(50)]
    seen.add_all(added)
    seen.add_all(["one more"])
    added.append("one more")
    maybe, fresh = _split(added, seen)
    assert sorted(map(str, maybe)) == sorted(map(str, added)) and fresh == []
    assert all(k in seen for k in added)
    others = [f"other-{i}" for i in range(500)]
    maybe, fresh = _split(others, seen)
    assert sorted(maybe + fresh) == sorted(others)
    assert [k for k in others if k in seen] == maybe  # the split is the membership test
    assert _split(others, SeenKeys()) == ([], others)


def test_row_values_follow_the_column_order():
    row = {"a": 1, "b": None, "c": "x"}
    assert row_values(["c", "a", "b"])(row) == ("x", 1, None)
    assert row_values(["b"])(row) == (None,)


def test_case_history_copy_columns_are_the_tables():
    assert set(ch.COLUMNS) == set(ch.entries.columns.keys())
    assert len(ch.COLUMNS) == len(ch.entries.columns)
    e = next(e for e in sc.family() if e.case_key)
    row = dict(zip(ch.COLUMNS, ch.entry_values(e), strict=True))
    assert (row["event_type"], row["case_key"], row["position"]) == (
        e.event_type, e.case_key, e.position)


@pytest.mark.parametrize("fails", [False, True])
def test_garbage_collection_is_on_again_after_a_run(store, engine, fails):
    assert gc.isenabled()
    store.append(sc.family())
    if fails:
        runner = ProjectionRunner(store, engine, [Explodes(store.person_key, 5)], batch_size=3)
        runner.prepare()
        with pytest.raises(ProjectionError):
            runner.run()
    else:
        make_runner(store, engine, batch_size=3).rebuild()
        assert make_runner(store, engine).status()[0].lag == 0
    assert gc.isenabled()
