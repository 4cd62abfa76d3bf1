"""Follow-up cadences as data, and the pure compliance check of one case against its cadence."""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from hub.targets.loader import RuleFileError, default_rules_dir


@dataclass(frozen=True, slots=True)
class Cadence:
    case_type: str
    first_days: int
    every_days: int
    later_days: int | None = None
    grace_days: int = 0
    source: str = ""


def load_cadences(path: Path | None = None) -> dict[str, Cadence]:
    path = path or default_rules_dir() / "cadences.toml"
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RuleFileError(str(path), None, None, str(exc)) from None
    out: dict[str, Cadence] = {}
    for i, c in enumerate(raw.get("cadences", [])):
        try:
            cadence = Cadence(**c)
        except TypeError as exc:
            raise RuleFileError(str(path), None, f"cadences[{i}]", str(exc)) from None
        for name in ("first_days", "every_days"):
            value = getattr(cadence, name)
            if not isinstance(value, int) or value < 1:
                raise RuleFileError(str(path), None, f"cadences[{i}].{name}",
                                    "expected a positive number of days")
        out[cadence.case_type] = cadence
    return out


def due_dates(c: Cadence, opened: datetime, until: datetime) -> list[datetime]:
    """Follow-ups due between opening and ``until`` (first after ``first_days``, then every
    ``every_days`` in the first year, then every ``later_days``)."""
    out, due = [], opened + timedelta(days=c.first_days)
    while due <= until:
        out.append(due)
        in_first_year = due - opened < timedelta(days=365)
        due += timedelta(days=c.every_days if in_first_year or not c.later_days
                         else c.later_days)
    return out


def compliance(c: Cadence, opened: datetime, until: datetime,
               followups: Sequence[datetime]) -> list[tuple[datetime, bool]]:
    """(due date, met) for every due date whose grace period has passed by ``until``.

    A due date is met by a follow-up in its window: after the previous window closed (the
    previous due date plus ``grace_days``; the opening for the first) and no later than this due
    date plus ``grace_days``. So one follow-up never counts for two due dates.
    """
    grace = timedelta(days=c.grace_days)
    out, window_opens = [], opened
    for due in due_dates(c, opened, until - grace):
        met = any(window_opens < f <= due + grace for f in followups)
        out.append((due, met))
        window_opens = due + grace
    return out
