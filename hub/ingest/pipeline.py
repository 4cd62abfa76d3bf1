"""Batching validated events into the store; bad records to dead letters, the rest goes on."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import orjson

from hub.domain import events as ev
from hub.ingest.formats import FileUnreadable, SourceRecord
from hub.ingest.validate import Rejected, Validator
from hub.logging import get_logger, mask_text
from hub.store.contract import AppendOutcome, CursorUpdate, DeadLetter
from hub.store.eventstore import EventStore

_log = get_logger("glasplade.ingest")


@dataclass
class IngestSummary:
    read: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    batches: int = 0
    elapsed: float = 0.0
    reasons: dict[str, int] = field(default_factory=dict)
    file_errors: list[str] = field(default_factory=list)

    @property
    def events_per_second(self) -> float:
        return self.read / self.elapsed if self.elapsed > 0 else 0.0

    def add(self, outcome: AppendOutcome) -> None:
        self.stored += outcome.stored
        self.duplicates += outcome.duplicates
        self.batches += 1

    def as_dict(self) -> dict[str, object]:
        return {"read": self.read, "stored": self.stored, "duplicates": self.duplicates,
                "rejected": self.rejected, "batches": self.batches,
                "elapsed_s": round(self.elapsed, 3),
                "events_per_s": round(self.events_per_second, 1),
                "rejection_reasons": self.reasons, "file_errors": self.file_errors}


def _reason_class(reason: str) -> str:
    return reason.split(":")[0][:80]


class Ingestor:
    """Feeds a stream of source records into the store in batches of ``batch_size``."""

    def __init__(self, store: EventStore, validator: Validator, batch_size: int = 2000,
                 on_batch: Callable[[IngestSummary], None] | None = None):
        self.store = store
        self.validator = validator
        self.batch_size = batch_size
        self.on_batch = on_batch

    def run(self, records: Iterable[SourceRecord], source_system: str = "file",
            summary: IngestSummary | None = None) -> IngestSummary:
        summary = summary or IngestSummary()
        started = time.perf_counter()
        events: list[ev.CanonicalEvent] = []
        dead: list[DeadLetter] = []
        try:
            for rec in records:
                summary.read += 1
                try:
                    if rec.error:
                        raise Rejected(rec.error)
                    event = (self.validator.from_avro(rec.record) if rec.avro
                             else self.validator.from_json(rec.record))
                    events.append(event)
                except Rejected as exc:
                    # Reasons are stored and shown in clear: never let a CPR-shaped value through.
                    reason = mask_text(f"{rec.origin}: {exc}")
                    summary.rejected += 1
                    key = _reason_class(str(exc))
                    summary.reasons[key] = summary.reasons.get(key, 0) + 1
                    dead.append(DeadLetter(
                        source_system=_source_of(rec, source_system), reason=reason,
                        raw=rec.raw if rec.raw is not None else orjson.dumps(
                            rec.record, default=str, option=orjson.OPT_NON_STR_KEYS),
                        source_record_id=_record_id_of(rec)))
                if len(events) + len(dead) >= self.batch_size:
                    self._flush(events, dead, summary)
                    events, dead = [], []
        except FileUnreadable:  # what was read before the damage is stored, then it is told
            if events or dead:
                self._flush(events, dead, summary)
            summary.elapsed += time.perf_counter() - started
            raise
        if events or dead:
            self._flush(events, dead, summary)
        summary.elapsed += time.perf_counter() - started
        _log.info("ingest.finished", source=source_system, read=summary.read,
                  stored=summary.stored, duplicates=summary.duplicates,
                  rejected=summary.rejected, seconds=round(summary.elapsed, 3))
        return summary

    def append(self, events: list[ev.CanonicalEvent], dead: list[DeadLetter],
               cursors: list[CursorUpdate], summary: IngestSummary) -> None:
        """For connectors: one batch with the cursors it covers, in one transaction."""
        summary.read += len(events) + len(dead)
        summary.rejected += len(dead)
        summary.add(self.store.append(events, cursors=cursors, dead_letters=dead))

    def _flush(self, events: list[ev.CanonicalEvent], dead: list[DeadLetter],
               summary: IngestSummary) -> None:
        outcome = self.store.append(events, dead_letters=dead)
        summary.add(outcome)
        _log.debug("ingest.batch", stored=outcome.stored, duplicates=outcome.duplicates,
                   dead_lettered=outcome.dead_lettered, last_position=outcome.last_position)
        for d in dead:
            _log.warning("ingest.rejected", source=d.source_system, reason=d.reason)
        if self.on_batch:
            self.on_batch(summary)


def _source_of(rec: SourceRecord, default: str) -> str:
    if isinstance(rec.record, dict) and isinstance(rec.record.get("source_system"), str):
        return rec.record["source_system"]
    return default


def _record_id_of(rec: SourceRecord) -> str | None:
    if isinstance(rec.record, dict) and isinstance(rec.record.get("source_record_id"), str):
        return rec.record["source_record_id"]
    return None
