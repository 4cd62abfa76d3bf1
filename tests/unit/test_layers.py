"""Import direction: domain <- store/ingest <- connectors/projections <- api/cli (style.md).

Every module's imports are read from its syntax tree (including imports inside functions and
``importlib.import_module("...")`` with a literal name), never by importing it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: folder -> module prefixes it must not import.
FORBIDDEN: dict[str, tuple[str, ...]] = {
    # The domain is plain Python with no I/O and nothing else from the project.
    "hub/domain": (
        "hub.store", "hub.ingest", "hub.api", "hub.cli", "hub.bootstrap", "hub.config",
        "hub.personal_data", "hub.schemas", "hub.logging", "hub.synthetic", "hub.targets",
        "connectors", "projections",
        "sqlalchemy", "psycopg", "psycopg_pool", "httpx", "requests", "sqlite3", "socket",
        "fastapi", "starlette", "uvicorn", "kafka", "zeep", "fastavro", "eventsourcing",
        "structlog", "subprocess", "urllib.request", "http.client",
    ),
    # The store knows the domain and its own contract, not who calls it.
    "hub/store": ("hub.ingest", "hub.api", "hub.cli", "hub.bootstrap", "connectors",
                  "projections", "hub.synthetic", "hub.targets"),
    "hub/ingest": ("hub.api", "hub.cli", "hub.bootstrap", "projections"),
    "projections": ("connectors", "hub.api", "hub.cli", "hub.ingest"),
    "connectors": ("projections", "hub.api", "hub.cli"),
}


def _resolve(module: str | None, level: int, path: Path) -> str:
    """The absolute name of a (possibly relative) ``from`` import in ``path``."""
    if level == 0:
        return module or ""
    package = list(path.relative_to(ROOT).with_suffix("").parts)[:-1]  # the module's package
    base = package[: len(package) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def imports_of(source: str, path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source, filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node.module, node.level, path)
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{a.name}") for a in node.names if a.name != "*"]
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                   or (isinstance(node.func, ast.Name)
                       and node.func.id in ("__import__", "import_module")))):
            found.append((node.lineno, node.args[0].value))
    return found


def violations(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    out = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for line, module in imports_of(path.read_text(encoding="utf-8"), path):
            for bad in forbidden:
                if module == bad or module.startswith(bad + "."):
                    out.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return sorted(set(out))


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_imports_point_the_right_way(folder: str) -> None:
    assert (ROOT / folder).is_dir(), folder
    assert violations(folder, FORBIDDEN[folder]) == []


def test_the_domain_has_modules_to_check() -> None:
    names = {p.stem for p in (ROOT / "hub" / "domain").glob("*.py")}
    assert {"events", "streams", "cpr", "codec"} <= names


def test_the_checker_finds_every_kind_of_import(tmp_path: Path) -> None:
    fake = ROOT / "hub" / "domain" / "fake.py"  # only its name is used, to resolve ``..``
    source = "\n".join([
        "import sqlalchemy.orm",
        "from psycopg import sql",
        "from ..store import eventstore",
        "from . import events",
        "def f():",
        "    import httpx",
        "    importlib.import_module('connectors.cura.client')",
        "    __import__('projections.runner')",
    ])
    modules = [m for _, m in imports_of(source, fake)]
    assert "sqlalchemy.orm" in modules and "psycopg" in modules and "httpx" in modules
    assert "hub.store.eventstore" in modules and "hub.domain.events" in modules
    assert "connectors.cura.client" in modules and "projections.runner" in modules
    assert [m for m in modules if any(m == b or m.startswith(b + ".")
                                      for b in FORBIDDEN["hub/domain"])] == [
        "sqlalchemy.orm", "psycopg", "psycopg.sql", "hub.store", "hub.store.eventstore",
        "httpx", "connectors.cura.client", "projections.runner"]
