"""The pseudonym function is HMAC-SHA256 of the identifier under the pseudonym key: every stored
person key depends on it, so its value must never drift from the standard construction."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.personal_data import Pseudonymizer


def reference(key: bytes, identifier: str) -> str:
    return hmac.new(key, identifier.encode(), hashlib.sha256).hexdigest()[:32]


@pytest.mark.parametrize("key", [bytes(range(140, 172)), bytes(range(64)), bytes(range(200))],
                         ids=["32 bytes", "one block", "longer than a block"])
@settings(max_examples=200, deadline=None)
@given(identifier=st.text(max_size=200))
def test_person_key_is_the_standard_hmac_for_any_identifier_and_key_length(key, identifier):
    p = Pseudonymizer(key)
    expected = reference(key, identifier)
    assert p.person_key(identifier, remember=False) == expected
    assert p.person_key(identifier) == expected  # computed, then from the cache
    assert p.person_key(identifier) == expected


def test_keys_differ_by_pseudonym_key_and_are_not_kept_when_not_remembered():
    a, b = Pseudonymizer(bytes(range(32))), Pseudonymizer(bytes(range(1, 33)))
    assert a.person_key("0101801234") != b.person_key("0101801234")
    a.person_key("identity|anna|jensen", remember=False)
    assert "identity|anna|jensen" not in a._cache
    assert "0101801234" in a._cache


def test_a_short_pseudonym_key_is_refused():
    with pytest.raises(ValueError, match="at least 32 bytes"):
        Pseudonymizer(bytes(31))
