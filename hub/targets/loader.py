"""Load a municipality's rule file (TOML) with errors that say file, line and field."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from hub.domain.rules import RuleError, RuleSet, parse_rule_set

_LINE_IN_TOML_ERROR = re.compile(r"at line (\d+)")
_RULE_HEADER = re.compile(r"^\s*\[\[\s*rules\s*\]\]")
_SUBTABLE = re.compile(r"^\s*\[\s*rules\.([A-Za-z_]+)\s*\]")


class RuleFileError(ValueError):
    """A rule file cannot be used. ``str()`` reads ``file:line: field: message``."""

    def __init__(self, path: str, line: int | None, field: str | None, message: str):
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {field + ': ' if field else ''}{message}")
        self.path, self.line, self.field, self.message = path, line, field, message


def default_rules_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "deploy" / "rules"


def load_rule_file(path: str | Path) -> RuleSet:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RuleFileError(str(path), None, None, f"cannot read: {exc.strerror}") from None
    return load_rule_text(text, str(path))


def load_rule_text(text: str, name: str = "<rules>") -> RuleSet:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = _LINE_IN_TOML_ERROR.search(str(exc))
        raise RuleFileError(name, int(m.group(1)) if m else None, None,
                            f"not valid TOML: {exc}") from None
    if not isinstance(raw.get("rules", []), list):
        raise RuleFileError(name, _find_line(text, None, "rules"), "rules",
                            "expected [[rules]] tables")
    try:
        return parse_rule_set(raw)
    except RuleError as exc:
        raise RuleFileError(name, _find_line(text, exc.index, exc.field), exc.field,
                            exc.message) from None


def _find_line(text: str, index: int | None, field: str) -> int | None:
    """The 1-based line of ``field`` in rule number ``index`` (or the header when None).

    Good enough for the shapes rule files have: ``[[rules]]`` tables with ``key = value`` lines
    and ``[rules.<sub>]`` sub-tables. Falls back to the rule's header line.
    """
    lines = text.splitlines()
    headers = [i for i, line in enumerate(lines) if _RULE_HEADER.match(line)]
    if index is None:
        start, end = 0, headers[0] if headers else len(lines)
    elif index < len(headers):
        start = headers[index]
        end = headers[index + 1] if index + 1 < len(headers) else len(lines)
    else:
        return None
    top, _, sub = field.partition(".")
    top = top.split("[", 1)[0]
    section = None
    for i in range(start, end):
        m = _SUBTABLE.match(lines[i])
        if m:
            section = m.group(1)
            if section == top and not sub:
                return i + 1
            continue
        key = re.match(r"^\s*([A-Za-z_]+)\s*=", lines[i])
        if not key:
            continue
        if sub and section == top and key.group(1) == sub:
            return i + 1
        if section is None and key.group(1) == top:
            return i + 1
    return start + 1 if index is not None else None


def load_rules(municipality_or_path: str, rules_dir: Path | None = None) -> RuleSet:
    """A path to a rule file, or a municipality name looked up in ``deploy/rules``."""
    candidate = Path(municipality_or_path)
    if candidate.suffix == ".toml" or candidate.exists():
        return load_rule_file(candidate)
    return load_rule_file((rules_dir or default_rules_dir()) / f"{municipality_or_path}.toml")
