"""Synthetic CPR numbers: valid form, matching century, always failing modulus 11."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.domain import cpr

BORN = st.dates(min_value=date(1900, 1, 1), max_value=date(2036, 12, 31))


@given(BORN, st.integers(min_value=0, max_value=100_000), st.booleans())
def test_synthetic_numbers_are_valid_in_form_and_fail_modulus_11(born, serial, substitute):
    n = cpr.synthetic_cpr(born, serial, substitute=substitute)
    assert len(n) == 10 and n.isdigit()
    assert cpr.birth_date(n) == born           # the century digit matches the birth year
    assert not cpr.passes_modulus_11(n)
    assert cpr.is_synthetic(n)
    assert cpr.is_substitute(n) == substitute


def test_synthetic_numbers_are_deterministic_and_distinct_per_serial():
    born = date(1984, 7, 3)
    assert cpr.synthetic_cpr(born, 5) == cpr.synthetic_cpr(born, 5)
    assert len({cpr.synthetic_cpr(born, s) for s in range(200)}) > 150


def test_a_number_passing_modulus_11_is_not_synthetic():
    # No real-looking number is written down here: one of valid form that passes modulus 11 is
    # found at run time (the repository holds only numbers that fail it).
    passing = next(n for n in (f"010190{s:04d}" for s in range(10000))
                   if cpr.passes_modulus_11(n))
    assert cpr.is_valid_form(passing)
    assert not cpr.is_synthetic(passing)
    assert cpr.passes_modulus_11("0000000000") and not cpr.is_valid_form("0000000000")


@pytest.mark.parametrize("bad", ["", "123", "01019012340", "010190-1234", "abcdefghij",
                                 "3102801234", "0013801234"])
def test_invalid_forms_are_refused(bad):
    assert not cpr.is_valid_form(bad)
    with pytest.raises(cpr.InvalidCpr):
        cpr.birth_date(bad)


@pytest.mark.parametrize("yy,digit,century", [
    (37, 4, 1900), (36, 4, 2000), (57, 5, 2000), (58, 5, 1800), (99, 0, 1900), (10, 9, 2000)])
def test_century_rules(yy, digit, century):
    assert cpr.century(yy, digit) == century


def test_birth_years_outside_the_synthetic_range_are_refused():
    with pytest.raises(ValueError):
        cpr.synthetic_cpr(date(1899, 12, 31), 1)
    with pytest.raises(ValueError):
        cpr.synthetic_cpr(date(2037, 1, 1), 1)


def test_substitute_numbers_add_60_to_the_day():
    n = cpr.synthetic_cpr(date(2001, 2, 28), 9, substitute=True)
    assert n.startswith("88")
    assert cpr.birth_date(n) == date(2001, 2, 28)
    assert cpr.birth_date(n) + timedelta(days=1) == date(2001, 3, 1)
