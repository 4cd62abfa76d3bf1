"""The canonical event schemas (``schemas/*.avsc``), loaded and checked with fastavro."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import fastavro
from fastavro.validation import validate

from hub.domain import events as ev

NAMESPACE = "dk.glasplade.events"
#: Files in dependency order; envelope.avsc last (its payload union names every event record).
SCHEMA_FILES = ("common", "person", "case", "grant", "consent", "marking", "pathway", "derived",
                "envelope")


class SchemaError(RuntimeError):
    """The schema files are missing, malformed or disagree with the event classes."""


def schema_dir() -> Path:
    configured = os.environ.get("GLASPLADE_SCHEMA_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parent.parent / "schemas"


@dataclass(frozen=True)
class Schemas:
    envelope: dict[str, Any]
    """The parsed envelope schema: write and read container files with it."""
    records: dict[str, dict[str, Any]]
    """Parsed payload record schemas by short name (CaseOpened, ...)."""
    versions: dict[str, int]
    """glasplade.version per payload record."""
    raw: dict[str, Any]
    """The envelope schema fully expanded, as plain JSON (for other Avro libraries)."""

    def validate_payload(self, event_type: str, record: dict[str, Any]) -> None:
        """Raise ``fastavro.validation.ValidationError`` when ``record`` does not fit."""
        validate(record, self.records[event_type], raise_errors=True)


def load(directory: Path | None = None) -> Schemas:
    directory = directory or schema_dir()
    named: dict[str, Any] = {}
    records: dict[str, dict[str, Any]] = {}
    versions: dict[str, int] = {}
    envelope = None
    raw_by_name: dict[str, Any] = {}
    for name in SCHEMA_FILES:
        path = directory / f"{name}.avsc"
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SchemaError(f"{path}: {exc}") from exc
        try:
            parsed = fastavro.parse_schema(raw, named_schemas=named)
        except Exception as exc:  # fastavro raises several types for bad schemas
            raise SchemaError(f"{path}: {exc}") from exc
        for rec in raw if isinstance(raw, list) else [raw]:
            raw_by_name[rec["name"]] = rec
        if name == "envelope":
            envelope = parsed
            continue
        for rec in raw:
            short = rec["name"]
            records[short] = named[f"{NAMESPACE}.{short}"]
            if short != "Address":
                versions[short] = int(rec.get("glasplade.version", 1))
    assert envelope is not None
    events_in_schemas = set(versions)
    if events_in_schemas != set(ev.PAYLOAD_TYPES):
        raise SchemaError(
            "schemas and hub.domain.events disagree: only in schemas "
            f"{sorted(events_in_schemas - set(ev.PAYLOAD_TYPES))}, only in code "
            f"{sorted(set(ev.PAYLOAD_TYPES) - events_in_schemas)}"
        )
    expanded = _expand(raw_by_name["Envelope"], raw_by_name, set())
    # Each payload record on its own, fully expanded, for validating hand-made (JSON) records.
    records = {short: fastavro.parse_schema(_expand(raw_by_name[short], raw_by_name, set()))
               for short in records}
    # Parse the expanded form on its own, so readers and writers need no shared name table.
    return Schemas(envelope=fastavro.parse_schema(expanded), records=records, versions=versions,
                   raw=expanded)


def _expand(obj: Any, by_name: dict[str, Any], defined: set[str]) -> Any:
    """Inline named references at their first use (Avro defines each name once)."""
    if isinstance(obj, str):
        short = obj.removeprefix(NAMESPACE + ".")
        if short in by_name and short not in defined:
            return _expand(by_name[short], by_name, defined)
        return obj
    if isinstance(obj, list):
        return [_expand(v, by_name, defined) for v in obj]
    if isinstance(obj, dict):
        if obj.get("type") == "record":
            defined.add(obj["name"])
        return {k: (_expand(v, by_name, defined) if k in ("type", "fields", "items") else v)
                for k, v in obj.items()}
    return obj


@cache
def default() -> Schemas:
    """The project's schemas, loaded once per process (checked at start-up by bootstrap)."""
    return load()
