"""Fixtures of the challenge tests: a challenge folder over SQLite and, when IQARENA_TEST_POSTGRES is set (CI), over
a PostgreSQL database created for this test session and dropped after it."""

from __future__ import annotations

import os
import secrets

import pytest

pytest.importorskip("fastapi", reason="the challenge platform needs the server extra")

from .challenge_util import write_config  # noqa: E402

from iqarena.challenge import init_challenge  # noqa: E402

PG_ENV = "IQARENA_TEST_POSTGRES"


@pytest.fixture(scope="session")
def pg_database():
    """The URL of a fresh PostgreSQL database for this session (dropped at its end)."""
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"{PG_ENV} is not set (CI's .ci/run sets it and starts PostgreSQL)")
    import psycopg

    name = f"iqarena_test_{os.getpid()}_{secrets.token_hex(3)}"
    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    try:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at {PG_ENV} is not reachable: {exc}")
    yield conninfo.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _reset_schema(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request):
    """None (SQLite in the challenge folder) or the session's PostgreSQL database, emptied for this test."""
    if request.param == "sqlite":
        return None
    url = request.getfixturevalue("pg_database")
    _reset_schema(url)
    return url


@pytest.fixture
def sqlite_url():
    return None


def _challenge(tmp_path, url, **config):
    path = write_config(tmp_path / "source", **config)
    ch = init_challenge(tmp_path / "ch", path, url)
    ch.url = url
    return ch


@pytest.fixture
def make_challenge(tmp_path):
    """make_challenge(url, **write_config options) -> an initialised Challenge (engine disposed afterwards)."""
    made = []

    def make(url=None, **config):
        ch = _challenge(tmp_path / f"c{len(made)}", url, **config)
        made.append(ch)
        return ch
    yield make
    for ch in made:
        ch.engine.dispose()


@pytest.fixture
def ch(make_challenge, db_url):
    return make_challenge(db_url)


@pytest.fixture
def ch_sqlite(make_challenge):
    return make_challenge(None)


def pytest_configure(config):
    # starlette's TestClient still runs on httpx (a deprecation notice of starlette, not of this code)
    config.addinivalue_line("filterwarnings", "ignore:Using `httpx` with `starlette.testclient`")
