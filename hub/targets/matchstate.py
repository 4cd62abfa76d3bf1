"""Apply a run of TargetGroupMatchStarted/Ended events to the match tables in bulk.

A nightly run can record tens of thousands of match events; one round trip per event would make
the catch-up the slowest part of the night. This reads the rows a run touches with a few queries
(PostgreSQL: one ``= ANY(array)`` per table and 10,000 keys; SQLite: ``IN`` lists of 500),
applies the events in order in memory, and writes the result back with one delete per rule and
table and one insert per table (COPY on PostgreSQL). Same result as applying the events one by
one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from hub.domain import events as ev
from projections.rows import among, insert_many, key_chunks

Key = tuple[str, str]


def _rows_for(conn: sa.Connection, table: sa.Table, subjects: list[str]) -> list[dict]:
    out = []
    for chunk in key_chunks(conn, subjects):
        out += [dict(r._mapping) for r in conn.execute(
            sa.select(table).where(among(conn, table.c.subject, chunk)))]
    return out


def _delete(conn: sa.Connection, table: sa.Table, keys: Iterable[Key]) -> None:
    """Delete rows by (rule_id, subject), per rule by subject (index-friendly)."""
    by_rule: dict[str, list[str]] = {}
    for rule_id, subject in keys:
        by_rule.setdefault(rule_id, []).append(subject)
    for rule_id, subjects in sorted(by_rule.items()):
        for chunk in key_chunks(conn, sorted(subjects)):
            conn.execute(table.delete().where(table.c.rule_id == rule_id,
                                              among(conn, table.c.subject, chunk)))


def apply_match_events(conn: sa.Connection, p: Any, events: Sequence[ev.CanonicalEvent],
                       subject_of: Any) -> None:
    """``p`` is the TargetGroupsProjection; ``subject_of(event)`` gives the person key."""
    keyed = [((e.payload.rule_id, subject_of(e)), e) for e in events]
    keys = sorted({k for k, _ in keyed})
    wanted = set(keys)
    subjects = sorted({s for _, s in keys})
    matches: dict[Key, dict | None] = {k: None for k in keys}
    stored: set[Key] = set()
    for row in _rows_for(conn, p.matches, subjects):
        k = (row["rule_id"], row["subject"])
        if k in wanted:
            matches[k] = row
            stored.add(k)
    episodes: dict[Key, int] = {k: 0 for k in keys}
    history: dict[tuple[str, str, int], dict] = {}
    stored_history: set[tuple[str, str, int]] = set()
    for row in _rows_for(conn, p.match_history, subjects):
        k = (row["rule_id"], row["subject"])
        if k in wanted:
            episodes[k] = max(episodes[k], row["episode"])
            history[(*k, row["episode"])] = row
            stored_history.add((*k, row["episode"]))
    changed_history: set[tuple[str, str, int]] = set()
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
            hk = (*k, episodes[k])
            history[hk] = {"rule_id": k[0], "subject": k[1], "episode": episodes[k],
                           "started_at": e.occurred_at, "ended_at": None, "reason": None}
            changed_history.add(hk)
        elif matches[k] is not None:
            hk = (*k, matches[k]["episode"])
            history.setdefault(hk, {"rule_id": k[0], "subject": k[1], "episode": hk[2],
                                    "started_at": matches[k]["started_at"]})
            history[hk].update(ended_at=e.occurred_at, reason=pl.reason)
            changed_history.add(hk)
            matches[k] = None
    _delete(conn, p.matches, stored)
    _delete(conn, p.match_units, stored)
    h = p.match_history
    updates = [history[hk] for hk in sorted(changed_history & stored_history)]
    if updates:
        conn.execute(h.update().where(h.c.rule_id == sa.bindparam("k_rule"),
                                      h.c.subject == sa.bindparam("k_subject"),
                                      h.c.episode == sa.bindparam("k_episode"))
                     .values(ended_at=sa.bindparam("ended_at"), reason=sa.bindparam("reason")),
                     [{"k_rule": x["rule_id"], "k_subject": x["subject"],
                       "k_episode": x["episode"], "ended_at": x["ended_at"],
                       "reason": x["reason"]} for x in updates])
    insert_many(conn, h, [history[hk] for hk in sorted(changed_history - stored_history)])
    open_rows = [r for r in matches.values() if r is not None]
    insert_many(conn, p.matches, open_rows)
    insert_many(conn, p.match_units, _units(conn, p, open_rows))


def _units(conn: sa.Connection, p: Any, rows: list[dict]) -> list[dict]:
    """The units behind each open match: its cases' units and its grants' granting units."""
    cases = sorted({x[5:] for r in rows for x in r["evidence"].split("\n")
                    if x.startswith("case:")})
    grants = sorted({x[6:] for r in rows for x in r["evidence"].split("\n")
                     if x.startswith("grant:")})
    c, g = p.facts["cases"], p.facts["grants"]
    unit_of: dict[str, str] = {}
    for chunk in key_chunks(conn, cases):
        unit_of.update({f"case:{k}": u for k, u in conn.execute(
            sa.select(c.c.case_key, c.c.unit_id).where(among(conn, c.c.case_key, chunk)))})
    for chunk in key_chunks(conn, grants):
        unit_of.update({f"grant:{k}": u for k, u in conn.execute(
            sa.select(g.c.grant_id, g.c.granting_unit_id)
            .where(among(conn, g.c.grant_id, chunk)))})
    out = set()
    for r in rows:
        for x in r["evidence"].split("\n"):
            if x in unit_of:
                out.add((r["rule_id"], r["subject"], unit_of[x]))
    return [{"rule_id": a, "subject": b, "unit_id": u} for a, b, u in sorted(out)]
