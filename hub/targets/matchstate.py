"""Apply a run of TargetGroupMatchStarted/Ended events to the match tables in bulk.

A nightly run can record tens of thousands of match events; one round trip per event would make
the catch-up the slowest part of the night. This reads the rows a run touches with a few ``IN``
queries, applies the events in order in memory, and writes the result back with one delete and
one insert per table (chunked). Same result as applying the events one by one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from hub.domain import events as ev

_CHUNK = 500
Key = tuple[str, str]


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i:i + _CHUNK]


def _rows_for(conn: sa.Connection, table: sa.Table, subjects: list[str]) -> list[dict]:
    out = []
    for chunk in _chunks(subjects):
        out += [dict(r._mapping) for r in conn.execute(
            sa.select(table).where(table.c.subject.in_(chunk)))]
    return out


def _delete(conn: sa.Connection, table: sa.Table, keys: list[Key]) -> None:
    for chunk in _chunks(keys):
        conn.execute(table.delete().where(sa.tuple_(table.c.rule_id, table.c.subject).in_(chunk)))


def apply_match_events(conn: sa.Connection, p: Any, events: Sequence[ev.CanonicalEvent],
                       subject_of: Any) -> None:
    """``p`` is the TargetGroupsProjection; ``subject_of(event)`` gives the person key."""
    keyed = [((e.payload.rule_id, subject_of(e)), e) for e in events]
    keys = sorted({k for k, _ in keyed})
    wanted = set(keys)
    subjects = sorted({s for _, s in keys})
    matches: dict[Key, dict | None] = {k: None for k in keys}
    for row in _rows_for(conn, p.matches, subjects):
        if (row["rule_id"], row["subject"]) in wanted:
            matches[(row["rule_id"], row["subject"])] = row
    episodes: dict[Key, int] = {k: 0 for k in keys}
    history: dict[tuple[str, str, int], dict] = {}
    for row in _rows_for(conn, p.match_history, subjects):
        k = (row["rule_id"], row["subject"])
        if k in wanted:
            episodes[k] = max(episodes[k], row["episode"])
    for k, e in keyed:
        pl = e.payload
        if isinstance(pl, ev.TargetGroupMatchStarted):
            episodes[k] += 1
            group = next((x[6:] for x in pl.evidence if x.startswith("group:")), k[1])
            matches[k] = {"rule_id": k[0], "subject": k[1], "rule_version": pl.rule_version,
                          "group_key": group, "episode": episodes[k],
                          "started_at": e.occurred_at, "explanation": pl.explanation,
                          "evidence": "\n".join(x for x in pl.evidence
                                                if not x.startswith("group:"))}
            history[(*k, episodes[k])] = {"rule_id": k[0], "subject": k[1],
                                          "episode": episodes[k], "started_at": e.occurred_at,
                                          "ended_at": None, "reason": None}
        elif matches[k] is not None:
            row = matches[k]
            hk = (*k, row["episode"])
            if hk not in history:
                found = conn.execute(sa.select(p.match_history).where(
                    p.match_history.c.rule_id == k[0], p.match_history.c.subject == k[1],
                    p.match_history.c.episode == row["episode"])).first()
                history[hk] = dict(found._mapping) if found else {
                    "rule_id": k[0], "subject": k[1], "episode": row["episode"],
                    "started_at": row["started_at"]}
            history[hk].update(ended_at=e.occurred_at, reason=pl.reason)
            matches[k] = None
    _delete(conn, p.matches, keys)
    _delete(conn, p.match_units, keys)
    for chunk in _chunks(list(history)):
        h = p.match_history
        conn.execute(h.delete().where(sa.tuple_(h.c.rule_id, h.c.subject, h.c.episode)
                                      .in_(chunk)))
    open_rows = [r for r in matches.values() if r is not None]
    for chunk in _chunks(open_rows):
        conn.execute(p.matches.insert(), list(chunk))
    for chunk in _chunks(list(history.values())):
        conn.execute(p.match_history.insert(), list(chunk))
    units = _units(conn, p, open_rows)
    for chunk in _chunks(units):
        conn.execute(p.match_units.insert(), list(chunk))


def _units(conn: sa.Connection, p: Any, rows: list[dict]) -> list[dict]:
    """The units behind each open match: its cases' units and its grants' granting units."""
    cases = sorted({x[5:] for r in rows for x in r["evidence"].split("\n")
                    if x.startswith("case:")})
    grants = sorted({x[6:] for r in rows for x in r["evidence"].split("\n")
                     if x.startswith("grant:")})
    c, g = p.facts["cases"], p.facts["grants"]
    unit_of: dict[str, str] = {}
    for chunk in _chunks(cases):
        unit_of.update({f"case:{k}": u for k, u in conn.execute(
            sa.select(c.c.case_key, c.c.unit_id).where(c.c.case_key.in_(chunk)))})
    for chunk in _chunks(grants):
        unit_of.update({f"grant:{k}": u for k, u in conn.execute(
            sa.select(g.c.grant_id, g.c.granting_unit_id).where(g.c.grant_id.in_(chunk)))})
    out = set()
    for r in rows:
        for x in r["evidence"].split("\n"):
            if x in unit_of:
                out.add((r["rule_id"], r["subject"], unit_of[x]))
    return [{"rule_id": a, "subject": b, "unit_id": u} for a, b, u in sorted(out)]
