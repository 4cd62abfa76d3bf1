"""Shared helpers for CLI modules: building the hub and rendering tables/JSON."""

from __future__ import annotations

import getpass
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import typer

from hub.bootstrap import Hub, bootstrap
from hub.config import ConfigError
from hub.domain import events as ev
from hub.store.contract import StoreError


def build_hub(store_url: str | None = None) -> Hub:
    overrides = {"store_url": store_url} if store_url else {}
    try:
        return bootstrap(**overrides)
    except (ConfigError, StoreError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def print_json(obj: Any) -> None:
    sys.stdout.write(orjson.dumps(obj, default=str, option=orjson.OPT_INDENT_2).decode() + "\n")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    typer.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    typer.echo("  ".join("-" * w for w in widths))
    for r in cells:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))


def current_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"


def record_access(hub: Hub, person: str, *, user: str, purpose: str, view: str) -> None:
    """Every read of a person's data by a user is itself an event (who, whom, purpose, when)."""
    now = datetime.now(UTC)
    hub.store.append([ev.CanonicalEvent(
        event_id=uuid.uuid4(), source_system="glasplade", source_record_id=str(uuid.uuid4()),
        source_version="1", occurred_at=now, person=person, actor=user,
        payload=ev.PersonRecordAccessed(user_id=user, purpose=purpose, view=view))])
