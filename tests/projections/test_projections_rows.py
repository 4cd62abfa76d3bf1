"""Pieces of the rebuild's fast path: the Bloom filter's bulk add and split agree with its
membership test, rows written without being read are inserted only when their key was never
written, COPY value tuples follow the column order, the case history's COPY columns are its
table's, and a batch's pause of garbage collection ends with the batch."""

from __future__ import annotations

import gc

import pytest
import sqlalchemy as sa

from projections import case_history as ch
from projections.rows import KeyedRows, RowCache, SeenKeys, _split, fresh_tables, row_values
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


def test_unread_rows_are_merged_once_their_key_was_written(engine):
    """In a rebuild, a row put without being read first (a relation, a pathway meeting) is
    inserted when its key (a composite key's first column) was never written; once it was,
    in an earlier batch, the row is merged with what is there."""
    md = sa.MetaData()
    s = sa.String
    relations = sa.Table("t_relations", md, sa.Column("person_key", s, primary_key=True),
                         sa.Column("related_key", s, primary_key=True), sa.Column("relation", s))
    persons = sa.Table("t_persons", md, sa.Column("person_key", s, primary_key=True),
                       sa.Column("name", s))
    md.create_all(engine)
    seen: dict[str, SeenKeys] = {}

    def batch(rows: list[tuple[str, str, str]]) -> None:
        with engine.begin() as conn, fresh_tables(seen):
            keyed, single = KeyedRows(relations), RowCache(persons)
            for a, b, c in rows:
                keyed.put({"person_key": a, "related_key": b, "relation": c})
                single.put({"person_key": a, "name": c})
            keyed.flush(conn)
            single.flush(conn)

    batch([("a", "b", "parent")])
    # COPY-sized on PostgreSQL: the never-written keys go in one plain insert
    others = [(f"p{i:02}", "a", "child") for i in range(25)]
    batch([("a", "b", "guardian"), ("a", "c", "parent"), *others])
    with engine.connect() as conn:
        assert sorted(map(tuple, conn.execute(sa.select(relations)))) == [
            ("a", "b", "guardian"), ("a", "c", "parent"), *others]
        assert sorted(map(tuple, conn.execute(sa.select(persons)))) == [
            ("a", "parent"), *[(p, "child") for p, _, _ in others]]


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


def test_rows_by_first_key_column_see_every_put_delete_and_load_in_either_order(engine):
    """``KeyedRows.with_first`` indexes its rows only when first asked; rows put, deleted or
    loaded before and after that are all found (or not), and ``set_group`` leaves exactly the
    rows it is given, in memory and in the table."""
    md = sa.MetaData()
    members = sa.Table("t_members", md, sa.Column("pathway_id", sa.String, primary_key=True),
                       sa.Column("person_key", sa.String, primary_key=True))
    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(members.insert(), [{"pathway_id": "p1", "person_key": "stored"},
                                        {"pathway_id": "p2", "person_key": "other"}])

    def names(rows: list[dict]) -> list[str]:
        return sorted(r["person_key"] for r in rows)

    with engine.begin() as conn:
        cache = KeyedRows(members)
        cache.put({"pathway_id": "p1", "person_key": "early"})
        cache.put({"pathway_id": "p2", "person_key": "gone"})
        cache.delete(("p2", "gone"))
        assert names(cache.with_first(conn, "p1")) == ["early", "stored"]  # put, then loaded
        cache.put({"pathway_id": "p1", "person_key": "late"})
        cache.put({"pathway_id": "p3", "person_key": "new"})
        assert names(cache.with_first(conn, "p1")) == ["early", "late", "stored"]
        assert names(cache.with_first(conn, "p2")) == ["other"]  # loaded after the index
        assert names(cache.with_first(conn, "p3")) == ["new"]
        cache.set_group(conn, "p1", [{"pathway_id": "p1", "person_key": "late"},
                                     {"pathway_id": "p1", "person_key": "added"}])
        assert names(cache.with_first(conn, "p1")) == ["added", "late"]
        cache.flush(conn)
    with engine.connect() as conn:
        stored = sorted(tuple(r) for r in conn.execute(sa.select(members)))
    assert stored == [("p1", "added"), ("p1", "late"), ("p2", "other"), ("p3", "new")]
