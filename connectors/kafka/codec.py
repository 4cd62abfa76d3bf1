"""The wire form of one Kafka record: a canonical Envelope, Avro-encoded without a container.

Two framings, chosen by configuration:

- ``schemaless``: the bare Avro body (fastavro's schemaless writer/reader);
- ``confluent``: the Confluent wire format, a zero magic byte and a 4-byte big-endian schema id
  before the body, as written by producers that use a schema registry.

Decoding never raises anything but ``Undecodable``: its message is the dead letter's reason.
"""

from __future__ import annotations

import io
import struct
from typing import Any, Literal

import fastavro

from hub.domain import events as ev
from hub.ingest.formats import event_to_avro
from hub.ingest.validate import Rejected, Validator
from hub.schemas import Schemas

Framing = Literal["schemaless", "confluent"]
FRAMINGS: tuple[str, ...] = ("schemaless", "confluent")
_MAGIC = 0
_HEADER = struct.Struct(">bI")


class Undecodable(ValueError):
    """A record that cannot become a canonical event; ``str()`` is the reason."""


def encode(event: ev.CanonicalEvent, schemas: Schemas, framing: Framing = "schemaless",
           schema_id: int = 1) -> bytes:
    buf = io.BytesIO()
    if framing == "confluent":
        buf.write(_HEADER.pack(_MAGIC, schema_id))
    fastavro.schemaless_writer(buf, schemas.envelope, event_to_avro(event, schemas))
    return buf.getvalue()


def decode(value: bytes | None, schemas: Schemas, framing: Framing = "schemaless",
           schema_id: int | None = None) -> ev.CanonicalEvent:
    """The canonical event in ``value``; ``schema_id`` (confluent framing) must match if given."""
    if not value:
        raise Undecodable("empty record value (tombstone?)")
    buf = io.BytesIO(value)
    if framing == "confluent":
        if len(value) < _HEADER.size:
            raise Undecodable("record shorter than the 5-byte schema-id header")
        magic, found_id = _HEADER.unpack(buf.read(_HEADER.size))
        if magic != _MAGIC:
            raise Undecodable(f"unknown magic byte {magic} (expected 0: schema-id framing)")
        if schema_id is not None and found_id != schema_id:
            raise Undecodable(f"schema id {found_id} is not the configured {schema_id}")
    try:
        record: Any = fastavro.schemaless_reader(buf, schemas.envelope, None,
                                                 return_record_name=True)
    except Exception as exc:  # fastavro raises EOFError, ValueError, IndexError, ... on bad bytes
        raise Undecodable(f"not an Avro Envelope: {type(exc).__name__}: {exc}") from None
    if buf.tell() != len(value):
        raise Undecodable(f"{len(value) - buf.tell()} trailing byte(s) after the Avro Envelope")
    try:
        return Validator(schemas).from_avro(record)
    except Rejected as exc:
        raise Undecodable(str(exc)) from None
