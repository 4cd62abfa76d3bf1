"""The nightly overlap run: evaluate every rule over the whole municipality, compare with what the
store says matched after the previous run, record the differences as events, write a report.

"The previous run" is the target-group projection's state, which is built from the hub's own
TargetGroupMatchStarted/Ended and OverlapDetected/Resolved events. Each event has a stable
source record id and version (``match:<rule>:<subject>`` / ``<episode>:started``), so a run that
crashes after appending is harmless to repeat, and a run with no changes appends nothing.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

from hub.domain import events as ev
from hub.domain import rules as r
from hub.logging import get_logger
from hub.store.eventstore import EventStore
from hub.targets.compile import SEP, Found, Key, run_rules
from hub.targets.feed import catch_up
from hub.targets.identity import IdentityOverlap, find_identity_overlaps
from projections.rows import among, key_chunks
from projections.target_groups import TargetGroupsProjection

SOURCE = "glasplade"
APPEND_BATCH = 5000
_ID_NAMESPACE = uuid.UUID("0b6c8f5e-2f1d-4d55-9a7e-7f1b0b7c4e21")
log = get_logger("glasplade.targets")


@dataclass(frozen=True, slots=True)
class EndedMatch:
    rule_id: str
    rule_version: str
    subject: str
    reason: str


@dataclass
class RunResult:
    as_of: datetime
    municipality: str
    rule_set_version: str
    current: Found = field(default_factory=Found)  # (rule id, subject) -> Match
    started: list[r.Match] = field(default_factory=list)
    ended: list[EndedMatch] = field(default_factory=list)
    overlaps: set[IdentityOverlap] = field(default_factory=set)
    overlaps_detected: list[IdentityOverlap] = field(default_factory=list)
    overlaps_resolved: list[str] = field(default_factory=list)
    events_stored: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    report_files: list[Path] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.started or self.ended or self.overlaps_detected
                    or self.overlaps_resolved)


def _event(as_of: datetime, record_id: str, version: str, person_key: str,
           payload: ev.Payload) -> ev.CanonicalEvent:
    return ev.CanonicalEvent(
        event_id=uuid.uuid5(_ID_NAMESPACE, f"{record_id}|{version}"), source_system=SOURCE,
        source_record_id=record_id, source_version=version, occurred_at=as_of,
        payload=payload, person_key=person_key, actor="glasplade-overlap")


def _open_matches(conn: sa.Connection, p: TargetGroupsProjection) -> set[Key]:
    """(rule id, subject) of every open match after the previous run. Read as one
    newline-separated list per rule: a few rows rather than one per match (200,000 at 500,000
    citizens)."""
    m = p.matches
    return {(rule_id, s) for rule_id, subjects in conn.execute(
        sa.select(m.c.rule_id, sa.func.aggregate_strings(m.c.subject, SEP))
        .group_by(m.c.rule_id)) if subjects for s in subjects.split(SEP)}


def _by_rule(keys: list[Key]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for rule_id, subject in keys:
        out.setdefault(rule_id, []).append(subject)
    return out


def _ended_rows(conn: sa.Connection, p: TargetGroupsProjection, ended: list[Key]
                ) -> dict[Key, sa.Row]:
    """The open match rows (rule version, episode) of the matches that end."""
    m = p.matches
    out: dict[Key, sa.Row] = {}
    for rule_id, subjects in _by_rule(ended).items():
        for chunk in key_chunks(conn, subjects):
            for row in conn.execute(
                    sa.select(m.c.rule_id, m.c.subject, m.c.rule_version, m.c.episode)
                    .where(m.c.rule_id == rule_id, among(conn, m.c.subject, chunk))):
                out[(row.rule_id, row.subject)] = row
    return out


def _last_episodes(conn: sa.Connection, p: TargetGroupsProjection, new: list[r.Match]
                   ) -> dict[tuple[str, str], int]:
    """The last episode of each (rule, subject) that starts matching again (history lookup for
    the new matches only: the nightly diff never scans the whole history)."""
    h = p.match_history
    wanted = {(x.rule_id, x.subject) for x in new}
    subjects = sorted({x.subject for x in new})
    out: dict[tuple[str, str], int] = {}
    for chunk in key_chunks(conn, subjects):
        for rule_id, subject, n in conn.execute(
                sa.select(h.c.rule_id, h.c.subject, sa.func.max(h.c.episode))
                .where(among(conn, h.c.subject, chunk))
                .group_by(h.c.rule_id, h.c.subject)):
            if (rule_id, subject) in wanted:
                out[(rule_id, subject)] = n
    return out


def run_overlap(store: EventStore, engine: sa.Engine, rule_set: r.RuleSet, as_of: datetime,
                projection: TargetGroupsProjection, report_dir: Path | None = None,
                before_record: Callable[[RunResult], object] | None = None) -> RunResult:
    """One nightly run. Raises on failure (the CLI turns that into a non-zero exit)."""
    from hub.targets.report import write_reports  # Jinja2 only when a report is written

    result = RunResult(as_of, rule_set.municipality, rule_set.version)
    t = result.timings
    t0 = time.perf_counter()
    catch_up(store, engine, projection)
    t["catch_up"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    with engine.connect() as conn:
        result.current = run_rules(conn, rule_set.rules, projection.facts, as_of.date(), t)
        t["evaluate"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        result.overlaps = find_identity_overlaps(conn, projection)
        t["identity"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        o = projection.overlaps
        previous = _open_matches(conn, projection)
        now = result.current.keys()
        new = [result.current[k] for k in sorted(now - previous)]
        ended = _ended_rows(conn, projection, sorted(previous - now))
        episodes = _last_episodes(conn, projection, new)
        overlap_rows = {row.overlap_id: row for row in conn.execute(
            sa.select(o.c.overlap_id, o.c.kind, o.c.subject, o.c.open, o.c.episode))}
    events: list[ev.CanonicalEvent] = []
    known_rules = {rule.rule_id: rule for rule in rule_set.rules}
    for match in new:
        episode = episodes.get((match.rule_id, match.subject), 0) + 1
        rule = known_rules[match.rule_id]
        result.started.append(match)
        events.append(_event(as_of, f"match:{match.rule_id}:{match.subject}", f"{episode}:started",
                             match.subject, ev.TargetGroupMatchStarted(
                                 rule_id=match.rule_id, rule_version=match.rule_version,
                                 subject_kind=rule.kind, explanation=r.explain(rule, match),
                                 evidence=(f"group:{match.group_key}", *match.evidence))))
    for _, row in sorted(ended.items()):
        reason = ("Reglen er fjernet fra regelsættet" if row.rule_id not in known_rules
                  else "Opfylder ikke længere reglen")
        result.ended.append(EndedMatch(row.rule_id, row.rule_version, row.subject, reason))
        events.append(_event(as_of, f"match:{row.rule_id}:{row.subject}",
                             f"{row.episode}:ended", row.subject,
                             ev.TargetGroupMatchEnded(row.rule_id, row.rule_version, reason)))
    now_overlaps = {x.overlap_id for x in result.overlaps}
    for overlap in sorted(result.overlaps, key=lambda x: x.overlap_id):
        row = overlap_rows.get(overlap.overlap_id)
        if row is not None and row.open:
            continue
        episode = (row.episode if row is not None else 0) + 1
        result.overlaps_detected.append(overlap)
        events.append(_event(as_of, overlap.overlap_id, f"{episode}:detected", overlap.subject,
                             ev.OverlapDetected(overlap.overlap_id, overlap.kind,
                                                overlap.explanation, overlap.evidence)))
    for overlap_id, row in sorted(overlap_rows.items()):
        if row.open and overlap_id not in now_overlaps:
            result.overlaps_resolved.append(overlap_id)
            events.append(_event(as_of, overlap_id, f"{row.episode}:resolved", row.subject,
                                 ev.OverlapResolved(overlap_id, row.kind,
                                                    "Ikke længere fundet i kørslen")))
    t["diff"] = time.perf_counter() - t0
    if before_record is not None:  # e.g. the write-back's commands: recorded before the match
        before_record(result)      # events, a run that dies in between is planned again

    t0 = time.perf_counter()
    for i in range(0, len(events), APPEND_BATCH):
        result.events_stored += store.append(events[i:i + APPEND_BATCH]).stored
    t["record"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    catch_up(store, engine, projection)
    t["catch_up_after"] = time.perf_counter() - t0

    if report_dir is not None:
        t0 = time.perf_counter()
        with engine.connect() as conn:
            result.report_files = write_reports(conn, projection, rule_set, result, report_dir)
        t["report"] = time.perf_counter() - t0
    log.info("overlap run done", municipality=rule_set.municipality,
             matches=len(result.current), started=len(result.started), ended=len(result.ended),
             overlaps=len(result.overlaps), detected=len(result.overlaps_detected),
             resolved=len(result.overlaps_resolved), events=result.events_stored)
    return result
