"""Only synthetic people: no file in the repository holds a CPR-shaped number that could be real.

Real CPR numbers issued before 2007-10-01 all pass modulus 11; Glasplade's synthetic numbers
always fail it (hub.domain.cpr). A tracked text file with a number of valid form that passes
modulus 11 fails this test.
"""

from __future__ import annotations

import re
import subprocess
from datetime import date
from pathlib import Path

from hub.domain import cpr

ROOT = Path(__file__).resolve().parents[2]
_SHAPED = re.compile(r"(?<![\d.])(\d{6})-?(\d{4})(?![\d.])")


def _tracked_text_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.split()
    return [ROOT / f for f in out if not f.endswith((".avro", ".png", ".jpg"))]


def possibly_real(text: str) -> list[str]:
    found = []
    for m in _SHAPED.finditer(text):
        number = m.group(1) + m.group(2)
        if (cpr.is_valid_form(number) and not cpr.is_substitute(number)
                and cpr.passes_modulus_11(number)):
            found.append(number)
    return found


def test_the_check_finds_a_possibly_real_number():
    passing = next(n for n in (f"010190{s:04d}" for s in range(10000))
                   if cpr.passes_modulus_11(n))
    assert possibly_real(f"id {passing[:6]}-{passing[6:]} here") == [passing]
    assert possibly_real("synthetic " + cpr.synthetic_cpr(date(1990, 1, 1), 3)) == []


def test_no_tracked_file_holds_a_possibly_real_cpr_number():
    offenders = {}
    for path in _tracked_text_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError):
            continue
        hits = possibly_real(text)
        if hits:
            offenders[str(path.relative_to(ROOT))] = len(hits)
    assert offenders == {}
