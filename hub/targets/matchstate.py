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


def _delete(conn: sa.Connection, table: sa.Table, keys: Iterable[Key]) -> None:
    """Delete rows by (rule_id, subject), per rule with ``subject IN (...)`` (index-friendly)."""
    by_rule: dict[str, list[str]] = {}
    for rule_id, subject in keys:
        by_rule.setdefault(rule_id, []).append(subject)
    for rule_id, subjects in sorted(by_rule.items()):
        for chunk in _chunks(sorted(subjects)):
            conn.execute(table.delete().where(table.c.rule_id == rule_id,
                                              table.c.subject.in_(chunk)))


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
    inserts = [history[hk] for hk in sorted(changed_history - stored_history)]
    for chunk in _chunks(inserts):
        conn.execute(h.insert(), list(chunk))
    open_rows = [r for r in matches.values() if r is not None]
    for chunk in _chunks(open_rows):
        conn.execute(p.matches.insert(), list(chunk))
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
