"""The connector contract, shared by every fagsystem (Airbyte's tiny surface, Kafka Connect's
offsets-with-data).

A connector declares its streams; a stream reads from a cursor and yields batches of canonical
events, each with the cursor position that covers them. The framework (``connectors.runner``),
not the connector, commits each batch's events, dead letters and cursor in ONE store transaction,
so a crash at any point neither loses nor doubles anything: on restart the stream resumes from the
last committed cursor and the store's dedupe absorbs any re-read records.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field

from hub.domain.events import CanonicalEvent
from hub.store.contract import DeadLetter


class ConnectorError(RuntimeError):
    """Base of the errors a connector raises; the runner's retry and circuit breaker use them."""


class SourceUnavailable(ConnectorError):
    """The source did not answer properly (connection refused, timeout, 5xx, SOAP fault):
    worth retrying later.
    """


class AuthenticationFailed(ConnectorError):
    """Credentials were refused even after a fresh login: not worth retrying until fixed."""


@dataclass(frozen=True)
class Batch:
    """Events and dead letters read from one stream, and the stream's cursor after them.

    ``cursor`` is opaque to everyone but the stream (a timestamp, a page token, an offset).
    ``None`` leaves the stored cursor as it is.
    """

    events: list[CanonicalEvent] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    cursor: str | None = None


class Stream(ABC):
    """One kind of record in one source (Cura ProcedureRequests, DUBU Sag, a Kafka partition)."""

    name: str

    @abstractmethod
    def read(self, cursor: str | None) -> Iterator[Batch]:
        """Batches after ``cursor`` (None: from the beginning), oldest first."""


class Connector(ABC):
    """One fagsystem. Required: ``name``, ``check()``, ``streams()``. Everything else is a hook."""

    name: str
    """Short lowercase name; also the ``source_system`` of its events and its settings prefix."""

    @abstractmethod
    def check(self) -> None:
        """Raise ``SourceUnavailable``/``AuthenticationFailed`` when the source cannot be read."""

    @abstractmethod
    def streams(self) -> list[Stream]: ...

    def backlog(self, cursors: dict[str, str]) -> int | None:
        """Records the source holds beyond ``cursors`` (this connector's stored cursors), or
        None where the source cannot say (a sweep of a whole system has no such count)."""
        return None

    def close(self) -> None:  # noqa: B027 - a hook with a sensible default
        """Release clients and sessions."""
