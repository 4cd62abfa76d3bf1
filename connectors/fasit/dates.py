"""Fasit's dates: a calendar date travels as local (Danish) midnight in UTC, e.g. 2026-04-04 is
``2026-04-03T22:00:00.000Z`` in summer and ``…T23:00:00.000Z`` in winter."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from hub.ingest.validate import LOCAL_TZ


def to_wire(day: date) -> str:
    at = datetime.combine(day, time(), tzinfo=LOCAL_TZ).astimezone(UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def from_wire(value: str) -> date:
    """The local calendar date of a Fasit date (or of a plain ``YYYY-MM-DD``)."""
    if len(value) == 10:
        return date.fromisoformat(value)
    return parse_timestamp(value).astimezone(LOCAL_TZ).date()


def parse_timestamp(value: str) -> datetime:
    at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return at if at.tzinfo else at.replace(tzinfo=LOCAL_TZ)


def timestamp_to_wire(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
