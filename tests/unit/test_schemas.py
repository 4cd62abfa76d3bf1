"""Schemas: they parse, they match the event classes field by field, they still read data written
with every earlier version (docs/schema-evolution.md), and the Apache reference library reads the
Avro files we write."""

from __future__ import annotations

import copy
import dataclasses
import json
import shutil
import types
import typing
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import avro.datafile
import avro.io
import avro.schema
import fastavro
import pytest

from hub import schemas as schemas_mod
from hub.domain import events as ev
from hub.domain.codec import payload_to_dict
from hub.ingest.formats import FileUnreadable, event_to_avro, read_file, write_avro
from hub.ingest.validate import Validator
from tests.fixtures.make_fixtures import fixture_types, sample_events

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = ROOT / "schemas"
FIXTURES = sorted((ROOT / "tests" / "fixtures" / "avro").glob("v*/*.avro"))
NS = schemas_mod.NAMESPACE


def _raw_records() -> dict[str, dict[str, Any]]:
    out = {}
    for path in sorted(SCHEMA_DIR.glob("*.avsc")):
        raw = json.loads(path.read_text(encoding="utf-8"))
        for rec in raw if isinstance(raw, list) else [raw]:
            out[rec["name"]] = rec
    return out


RAW = _raw_records()
CLASSES = {**ev.PAYLOAD_TYPES, "Address": ev.Address}


@pytest.fixture(scope="module")
def schemas() -> schemas_mod.Schemas:
    return schemas_mod.load(SCHEMA_DIR)


# --- every file parses ----------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(SCHEMA_DIR.glob("*.avsc")), ids=lambda p: p.name)
def test_every_schema_file_is_listed_and_parses(path: Path) -> None:
    assert path.stem in schemas_mod.SCHEMA_FILES, f"{path.name} is not loaded by hub.schemas"
    json.loads(path.read_text(encoding="utf-8"))


def test_the_schemas_load_and_parse_in_both_avro_libraries(schemas) -> None:
    assert set(schemas.records) == set(ev.PAYLOAD_TYPES) | {"Address"}
    parsed = avro.schema.parse(json.dumps(schemas.raw))  # the Apache reference parser
    union = next(f for f in parsed.fields if f.name == "payload").type
    assert [s.name for s in union.schemas] == [
        r.removeprefix(NS + ".") for r in RAW["Envelope"]["fields"][-1]["type"]]


def test_the_envelope_union_names_every_event_type_once() -> None:
    union = next(f["type"] for f in RAW["Envelope"]["fields"] if f["name"] == "payload")
    names = [n.removeprefix(NS + ".") for n in union]
    assert len(names) == len(set(names))
    assert set(names) == set(ev.PAYLOAD_TYPES)


@pytest.mark.parametrize("name", sorted(ev.PAYLOAD_TYPES))
def test_every_event_record_has_a_version_and_a_doc(name: str) -> None:
    rec = RAW[name]
    assert isinstance(rec.get("glasplade.version"), int) and rec["glasplade.version"] >= 1
    assert rec.get("doc"), f"{name} has no doc (docs/events.md is generated from it)"


def test_a_broken_schema_file_is_refused_at_start_up(tmp_path: Path) -> None:
    shutil.copytree(SCHEMA_DIR, tmp_path / "s")
    (tmp_path / "s" / "grant.avsc").write_text('[{"type": "record", "name": "GrantAwarded"',
                                               encoding="utf-8")
    with pytest.raises(schemas_mod.SchemaError, match="grant.avsc"):
        schemas_mod.load(tmp_path / "s")


def test_a_record_without_a_class_is_refused_at_start_up(tmp_path: Path) -> None:
    shutil.copytree(SCHEMA_DIR, tmp_path / "s")
    path = tmp_path / "s" / "case.avsc"
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw.append({"type": "record", "name": "CaseMerged", "namespace": NS,
                "glasplade.version": 1, "fields": [{"name": "into", "type": "string"}]})
    path.write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(schemas_mod.SchemaError, match="CaseMerged"):
        schemas_mod.load(tmp_path / "s")


# --- classes match records field by field ---------------------------------------------------

_PRIMITIVE = {"string": str, "boolean": bool, "int": int, "long": int, "double": float,
              "float": float}
_MISSING = object()


def _avro_shape(t: Any) -> tuple[Any, bool]:
    """(python type, optional) an Avro field type maps to."""
    if isinstance(t, list):
        rest = [x for x in t if x != "null"]
        assert len(rest) == 1, f"only ['null', T] unions are used in payloads, got {t}"
        return _avro_shape(rest[0])[0], "null" in t
    if isinstance(t, str):
        if t in _PRIMITIVE:
            return _PRIMITIVE[t], False
        return CLASSES[t.removeprefix(NS + ".")], False
    if t.get("logicalType") == "date":
        return date, False
    if t.get("logicalType", "").startswith("timestamp"):
        return datetime, False
    if t["type"] == "array":
        return tuple[_avro_shape(t["items"])[0], ...], False
    if t["type"] == "record":
        return CLASSES[t["name"]], False
    return _avro_shape(t["type"])


def _py_shape(tp: Any) -> tuple[Any, bool]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0], len(args) < len(typing.get_args(tp))
    return tp, False


def _py_default(f: dataclasses.Field) -> Any:
    if f.default is dataclasses.MISSING:
        return _MISSING
    return list(f.default) if isinstance(f.default, tuple) else f.default


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_class_matches_its_avro_record_field_by_field(name: str) -> None:
    cls, rec = CLASSES[name], RAW[name]
    hints = typing.get_type_hints(cls)
    py_fields = {f.name: f for f in dataclasses.fields(cls)}
    avro_fields = {f["name"]: f for f in rec["fields"]}
    assert set(py_fields) == set(avro_fields), (
        f"only in class {sorted(set(py_fields) - set(avro_fields))}, "
        f"only in schema {sorted(set(avro_fields) - set(py_fields))}")
    problems = []
    for fname, af in avro_fields.items():
        a_type, a_opt = _avro_shape(af["type"])
        p_type, p_opt = _py_shape(hints[fname])
        if a_type != p_type:
            problems.append(f"{fname}: schema type {a_type} vs class type {p_type}")
        if a_opt != p_opt:
            problems.append(f"{fname}: optional in schema {a_opt} vs in class {p_opt}")
        # A field's default belongs on the field (Avro spec); one inside "type" is ignored.
        a_default = af.get("default", _MISSING)
        p_default = _py_default(py_fields[fname])
        if a_default != p_default:
            shown = "none" if a_default is _MISSING else repr(a_default)
            misplaced = isinstance(af["type"], dict) and "default" in af["type"]
            problems.append(f"{fname}: schema default {shown}"
                            f"{' (misplaced inside type)' if misplaced else ''} vs class "
                            f"default {'none' if p_default is _MISSING else repr(p_default)}")
    assert not problems, f"{name}: " + "; ".join(problems)


# --- evolution: the current reader reads every earlier version's data -----------------------


def read_all(path: Path, schemas: schemas_mod.Schemas) -> list[dict[str, Any]]:
    """The evolution check: the hub's own Avro reader resolves a fixture's writer schema (in the
    container header) against the reader schema of ``schemas``."""
    records = list(read_file(path, schemas))
    assert all(r.error is None for r in records)
    return [r.record for r in records]


def test_there_is_a_fixture_for_every_schema_version(schemas) -> None:
    versions = {int(p.parent.name[1:]) for p in FIXTURES}
    assert versions == set(range(1, max(schemas.versions.values()) + 1))


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_current_schema_reads_every_fixture(path: Path, schemas) -> None:
    records = read_all(path, schemas)
    validator = Validator(schemas)
    got = [validator.from_avro(r) for r in records]
    assert {e.event_type for e in got} == set(fixture_types(int(path.parent.name[1:])))
    if path.parent.name == "v1":  # what the v1 fixture script wrote, read back unchanged
        expected = sample_events(1)
        assert [(e.event_id, e.payload, e.person, e.case_key, e.occurred_at) for e in got] == [
            (e.event_id, e.payload, e.person, e.case_key, e.occurred_at) for e in expected]


def _edited_schemas(tmp_path: Path, record: str, edit) -> schemas_mod.Schemas:
    """A copy of schemas/ with one record edited, loaded by the hub's own loader."""
    target = tmp_path / "schemas"
    shutil.copytree(SCHEMA_DIR, target)
    for path in target.glob("*.avsc"):
        raw = json.loads(path.read_text(encoding="utf-8"))
        recs = raw if isinstance(raw, list) else [raw]
        for rec in recs:
            if rec["name"] == record:
                edit(rec)
                path.write_text(json.dumps(raw), encoding="utf-8")
                return schemas_mod.load(target)
    raise AssertionError(record)


def _v1() -> Path:
    return next(p for p in FIXTURES if p.parent.name == "v1")


def test_evolution_check_fails_for_a_new_field_without_default(tmp_path: Path) -> None:
    s = _edited_schemas(tmp_path, "CaseOpened",
                        lambda r: r["fields"].append({"name": "team_id", "type": "string"}))
    with pytest.raises(FileUnreadable, match="team_id"):
        read_all(_v1(), s)


def test_evolution_check_fails_for_a_renamed_field(tmp_path: Path) -> None:
    def rename(rec):
        rec["fields"][0]["name"] = "dept"

    s = _edited_schemas(tmp_path, "CaseOpened", rename)
    with pytest.raises(FileUnreadable):
        read_all(_v1(), s)


def test_evolution_check_fails_for_a_changed_type(tmp_path: Path) -> None:
    def retype(rec):
        next(f for f in rec["fields"] if f["name"] == "citizen_present")["type"] = "string"

    s = _edited_schemas(tmp_path, "PathwayMeetingHeld", retype)
    with pytest.raises(FileUnreadable):
        read_all(_v1(), s)


def test_evolution_allows_a_new_optional_field_with_default(tmp_path: Path) -> None:
    def add(rec):
        rec["glasplade.version"] = 2
        rec["fields"].append({"name": "team_id", "type": ["null", "string"], "default": None})

    s = _edited_schemas(tmp_path, "CaseOpened", add)
    records = read_all(_v1(), s)
    opened = [body for r in records for (name, body) in [r["payload"]]
              if name == f"{NS}.CaseOpened"]
    assert len(opened) == 2 and all(body["team_id"] is None for body in opened)


def test_evolution_allows_a_new_event_type_as_a_new_union_branch(schemas) -> None:
    raw = copy.deepcopy(schemas.raw)
    payload = next(f for f in raw["fields"] if f["name"] == "payload")
    payload["type"].append({"type": "record", "name": "CaseMerged", "namespace": NS,
                            "fields": [{"name": "into", "type": "string"}]})
    widened = dataclasses.replace(schemas, envelope=fastavro.parse_schema(raw), raw=raw)
    records = read_all(_v1(), widened)
    assert len(records) == 2 * len(fixture_types(1))


# --- interoperability with the Apache reference implementation ------------------------------


def _apache_value(v: Any) -> Any:
    if isinstance(v, datetime):  # Apache avro hands back its own UTC tzinfo
        return v.astimezone(UTC)
    if isinstance(v, dict):
        return {k: _apache_value(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_apache_value(x) for x in v]
    return v


@pytest.mark.parametrize("codec", ["deflate", "null"])
def test_files_we_write_are_read_by_the_apache_avro_library(tmp_path: Path, schemas,
                                                             codec: str) -> None:
    events = sample_events(1)
    events += [dataclasses.replace(events[0], recorded_at=datetime(2025, 1, 1, tzinfo=UTC),
                                   person_key="ab" * 16, source_record_id="with-times")]
    path = tmp_path / "events.avro"
    assert write_avro(path, events, schemas, codec=codec) == len(events)
    with avro.datafile.DataFileReader(open(path, "rb"), avro.io.DatumReader()) as reader:
        assert reader.codec == codec
        got = [_apache_value(r) for r in reader]
    assert len(got) == len(events)
    for e, rec in zip(events, got, strict=True):
        want = event_to_avro(e, schemas)
        want["payload"] = payload_to_dict(e.payload)  # Apache returns a union branch bare
        assert rec == want, e.source_record_id


# --- the catalogue ---------------------------------------------------------------------------


def test_the_event_catalogue_is_generated_from_the_current_schemas() -> None:
    from tests.fixtures.make_events_doc import TARGET, render

    assert TARGET.read_text(encoding="utf-8") == render(), (
        "docs/events.md is stale: run .venv/bin/python -m tests.fixtures.make_events_doc")
    text = TARGET.read_text(encoding="utf-8")
    for name in ev.PAYLOAD_TYPES:
        assert f"**{name}**" in text
