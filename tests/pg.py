"""Finding or starting a PostgreSQL server for the tests (no silent skips).

Order: the URL in GLASPLADE_TEST_PG; the server at 127.0.0.1:5432; a throwaway cluster started
from the local PostgreSQL binaries with pytest-postgresql's executor. When none works, tests that
need PostgreSQL fail with the reason.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
import threading
import uuid
from contextlib import contextmanager
from urllib.parse import urlparse, urlunparse

import psycopg

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


class NoPostgres(RuntimeError):
    pass


def reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def local_bindir() -> str | None:
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl:
        return os.path.dirname(pg_ctl)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return os.path.dirname(found[-1]) if found else None


@contextmanager
def server_url():
    """Yield an admin URL of a usable server, starting a throwaway one if needed."""
    url = os.environ.get("GLASPLADE_TEST_PG") or DEFAULT_URL
    if reachable(url):
        yield url
        return
    if os.environ.get("GLASPLADE_TEST_PG"):
        raise NoPostgres(f"GLASPLADE_TEST_PG={url} is not reachable")
    bindir = local_bindir()
    if not bindir:
        raise NoPostgres("no PostgreSQL at 127.0.0.1:5432 and no local binaries (pg_ctl) to start "
                         "one; set GLASPLADE_TEST_PG or install postgresql")
    from pytest_postgresql.executor import PostgreSQLExecutor

    datadir = tempfile.mkdtemp(prefix="glasplade-pg-")
    executor = PostgreSQLExecutor(
        executable=os.path.join(bindir, "pg_ctl"), host="127.0.0.1", port=55432,
        datadir=datadir, unixsocketdir=datadir, logfile=os.path.join(datadir, "log"),
        startparams="-w", dbname="postgres", user="postgres", password="", options="")
    if os.geteuid() == 0:
        raise NoPostgres("no server at 127.0.0.1:5432, and a throwaway cluster cannot be started "
                         "as root; start the machine's cluster (deploy/ensure-services.sh)")
    executor.start()
    try:
        yield "postgresql://postgres@127.0.0.1:55432/postgres"
    finally:
        executor.stop()
        shutil.rmtree(datadir, ignore_errors=True)


def with_db(admin_url: str, dbname: str) -> str:
    u = urlparse(admin_url)
    return urlunparse(u._replace(path="/" + dbname))


@contextmanager
def fresh_database(admin_url: str, prefix: str = "glasplade_test"):
    """A new empty database, dropped afterwards (unique name: tests may share the server)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_db(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def at_once(calls: list) -> list[BaseException]:
    """Run the callables in threads released together (processes starting at the same moment,
    as far as the server can tell); returns what they raised."""
    start = threading.Barrier(len(calls))
    errors: list[BaseException] = []

    def run(call) -> None:  # noqa: ANN001
        start.wait()
        try:
            call()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors
