"""CPR numbers: form checks and the synthetic numbers the demo uses.

A CPR number is DDMMYY followed by a four-digit serial whose first digit, with YY, gives the
century. Real numbers issued before 2007-10-01 all pass the modulus-11 check. Glasplade's synthetic
numbers are valid in form (real date, consistent century digit) and always FAIL modulus 11, which
marks them as test data; see docs/personal-data.md.
"""

from __future__ import annotations

import re
from datetime import date

_WEIGHTS = (4, 3, 2, 7, 6, 5, 4, 3, 2, 1)
_CPR_RE = re.compile(r"^\d{10}$")


class InvalidCpr(ValueError):
    """A string is not a CPR or substitute number of valid form."""


def century(yy: int, century_digit: int) -> int:
    """The birth year's century from YY and the serial's first digit (CPR office rules)."""
    if century_digit in (0, 1, 2, 3):
        return 1900
    if century_digit in (4, 9):
        return 2000 if yy <= 36 else 1900
    # 5, 6, 7, 8
    return 2000 if yy <= 57 else 1800


def birth_date(cpr: str) -> date:
    """The birth date a CPR number encodes (substitute numbers add 60 to the day)."""
    if not _CPR_RE.match(cpr):
        raise InvalidCpr("expected 10 digits")
    dd, mm, yy, c = int(cpr[0:2]), int(cpr[2:4]), int(cpr[4:6]), int(cpr[6])
    if dd > 60:
        dd -= 60
    try:
        return date(century(yy, c) + yy, mm, dd)
    except ValueError as exc:
        raise InvalidCpr(f"no such date: {exc}") from None


def is_valid_form(cpr: str) -> bool:
    try:
        birth_date(cpr)
    except InvalidCpr:
        return False
    return True


def is_substitute(cpr: str) -> bool:
    """Erstatningspersonnummer: the day field is 61-91."""
    return is_valid_form(cpr) and int(cpr[0:2]) > 60


def passes_modulus_11(cpr: str) -> bool:
    return sum(int(d) * w for d, w in zip(cpr, _WEIGHTS, strict=True)) % 11 == 0


def is_synthetic(cpr: str) -> bool:
    """True for numbers of the form Glasplade generates: valid form, failing modulus 11."""
    return is_valid_form(cpr) and not passes_modulus_11(cpr)


def synthetic_cpr(born: date, serial: int, *, substitute: bool = False) -> str:
    """A synthetic CPR (or substitute) number for ``born``; ``serial`` picks among candidates.

    The century digit is chosen to match the birth year; the rest of the serial is searched from
    ``serial`` upward until the number fails modulus 11.
    """
    yy = born.year % 100
    if 1900 <= born.year <= 1999:
        digits = (0, 1, 2, 3)
    elif 2000 <= born.year <= 2036:
        digits = (4, 9)
    else:
        raise ValueError("synthetic numbers cover birth years 1900-2036")
    day = born.day + (60 if substitute else 0)
    prefix = f"{day:02d}{born.month:02d}{yy:02d}"
    space = 1000 * len(digits)  # distinct serials for this birth date and century
    for step in range(space):
        s = (serial + step) % space
        cd = digits[s // 1000]
        candidate = f"{prefix}{cd}{s % 1000:03d}"
        if not passes_modulus_11(candidate):
            return candidate
    raise AssertionError("unreachable: most serials fail modulus 11")
