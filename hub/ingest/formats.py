"""Reading and writing canonical events as files: Avro object containers and JSON Lines."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import fastavro
import orjson

from hub.domain import events as ev
from hub.domain.codec import payload_to_dict
from hub.schemas import NAMESPACE, Schemas


@dataclass(slots=True)
class SourceRecord:
    """One record read from a file: the decoded record, or the raw bytes and why they failed.

    Not frozen: one is made per record read, and a frozen dataclass's ``__init__`` costs about
    a microsecond more (a file of a million records, a second). Nothing changes one once made.
    """

    origin: str
    record: Any = None
    raw: bytes | None = None
    error: str | None = None
    avro: bool = False


class FileUnreadable(RuntimeError):
    """The file as a whole cannot be read (not Avro, schema cannot be resolved, unreadable)."""


def event_to_avro(e: ev.CanonicalEvent, schemas: Schemas) -> dict[str, Any]:
    name = type(e.payload).__name__
    return {
        "event_id": str(e.event_id),
        "event_type": name,
        "schema_version": e.schema_version or schemas.versions[name],
        "source_system": e.source_system,
        "source_record_id": e.source_record_id,
        "source_version": e.source_version,
        "occurred_at": e.occurred_at,
        "recorded_at": e.recorded_at,
        "person": e.person,
        "person_key": e.person_key,
        "case_key": e.case_key,
        "actor": e.actor,
        "payload": (f"{NAMESPACE}.{name}", payload_to_dict(e.payload)),
    }


def event_to_json(e: ev.CanonicalEvent) -> bytes:
    d = {
        "event_id": str(e.event_id), "event_type": e.event_type,
        "schema_version": e.schema_version, "source_system": e.source_system,
        "source_record_id": e.source_record_id, "source_version": e.source_version,
        "occurred_at": e.occurred_at, "person": e.person, "person_key": e.person_key,
        "case_key": e.case_key, "actor": e.actor, "payload": e.payload,
    }
    if e.recorded_at is not None:
        d["recorded_at"] = e.recorded_at
    if e.position is not None:
        d["position"] = e.position
    return orjson.dumps(d)


def write_avro(path: Path | BinaryIO, events: Iterable[ev.CanonicalEvent], schemas: Schemas,
               codec: str = "deflate") -> int:
    """Write an Avro object container file; returns the number of records written."""
    count = 0

    def records() -> Iterator[dict[str, Any]]:
        nonlocal count
        for e in events:
            count += 1
            yield event_to_avro(e, schemas)

    if isinstance(path, Path | str):
        with open(path, "wb") as f:
            fastavro.writer(f, schemas.envelope, records(), codec=codec)
    else:
        fastavro.writer(path, schemas.envelope, records(), codec=codec)
    return count


def read_file(path: Path, schemas: Schemas) -> Iterator[SourceRecord]:
    """Records of an ``.avro`` or ``.jsonl``/``.json`` file, in order; bad lines as errors."""
    suffix = path.suffix.lower()
    if suffix == ".avro":
        yield from _read_avro(path, schemas)
    elif suffix in (".jsonl", ".ndjson", ".json"):
        yield from _read_jsonl(path)
    else:
        raise FileUnreadable(f"{path}: unknown file type {suffix!r} (expected .avro or .jsonl)")


def _read_avro(path: Path, schemas: Schemas) -> Iterator[SourceRecord]:
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise FileUnreadable(f"{path}: {exc}") from exc
    with f:
        # Every union branch that is a record comes as (name, record): the payload's, which the
        # validator needs, and an optional Address's (the payload readers take either form).
        # Not return_record_name_override: it scans the union's members on every union read,
        # the payload's (one per event type) among them, for about a tenth of the decoding time.
        try:
            reader = fastavro.reader(f, return_record_name=True)
            if _canonical(reader.writer_schema) != _canonical(schemas.raw):
                # Written with another version of the schemas: resolve to the current one.
                f.seek(0)
                reader = fastavro.reader(f, reader_schema=schemas.envelope,
                                         return_record_name=True)
        except Exception as exc:  # fastavro raises ValueError/SchemaResolutionError/...
            raise FileUnreadable(f"{path}: not a readable Avro container: {exc}") from exc
        n = 0
        name = path.name
        try:
            for rec in reader:
                n += 1
                yield SourceRecord(origin=f"{name}#{n}", record=rec, avro=True)
        except Exception as exc:
            raise FileUnreadable(f"{path}: unreadable after record {n}: {exc}") from exc


def _canonical(schema: Any) -> str:
    return fastavro.schema.to_parsing_canonical_form(schema)


def _read_jsonl(path: Path) -> Iterator[SourceRecord]:
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise FileUnreadable(f"{path}: {exc}") from exc
    with f:
        for n, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            origin = f"{path.name}:{n}"
            try:
                yield SourceRecord(origin=origin, record=orjson.loads(line), raw=line)
            except orjson.JSONDecodeError as exc:
                yield SourceRecord(origin=origin, raw=line, error=f"line {n}: invalid JSON: {exc}")
