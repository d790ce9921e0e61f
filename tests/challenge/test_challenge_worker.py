"""The queue in the database: atomic claims, leases that expire, claim tokens that fence a stale worker, the
attempt cap, the time limit, concurrent workers; and the Alembic migrations."""

from __future__ import annotations

import dataclasses
import threading
import time

from .challenge_util import good_zip, raw_zip, user_with_token
from sqlalchemy import inspect, select

from iqarena.challenge.db import Submission, make_engine, migrate, schema_revision
from iqarena.challenge.worker import Worker


def queue(ch, tmp_path, count: int, *, bad: int = 0) -> list[int]:
    user_id, _, _ = user_with_token(ch, "alice", team="A")
    ids = []
    with ch.Session() as s:
        from iqarena.challenge.db import User
        user = s.get(User, user_id)
        s.expunge(user)
    user.organiser = True  # no daily limits in these tests
    for i in range(count):
        path = raw_zip(tmp_path / f"bad{i}.zip", {"output.txt": b"a,1\n"}) if i < bad else good_zip(
            tmp_path / f"g{i}.zip", seed=i)
        incoming = ch.receive()
        incoming.write(path.read_bytes())
        sub, _ = ch.submit(user, "dev", incoming, path.name)
        ids.append(sub.id)
    return ids


def worker(ch, **kw):
    return Worker(ch.root, ch.url, config=kw.pop("config", ch.config), engine=ch.engine, **kw)


def rows(ch):
    with ch.Session() as s:
        return {r.id: r for r in s.scalars(select(Submission))}


def test_expired_lease_is_taken_again_and_the_stale_claim_is_fenced(ch, tmp_path):
    [sid] = queue(ch, tmp_path, 1)
    w1, w2 = worker(ch), worker(ch)
    job = w1.claim()
    assert job[0] == sid and job[4] == 1
    assert rows(ch)[sid].status == "scoring"
    assert w2.claim() is None                  # leased (lease_s = 2)
    time.sleep(ch.config.limits.lease_s + 0.3)  # w1 "died": its lease runs out
    job2 = w2.claim()
    assert job2[0] == sid and job2[4] == 2 and job2[5] != job[5]
    assert not w1._finish(sid, job[5], {"status": "scored", "main": 9.0})   # stale token: nothing written
    assert w2._finish(sid, job2[5], {"status": "failed", "reason": "x"})
    row = rows(ch)[sid]
    assert (row.status, row.main, row.claim, row.lease_until) == ("failed", None, None, None)


def test_a_job_interrupted_max_attempts_times_fails_with_a_reason(ch, tmp_path):
    [sid] = queue(ch, tmp_path, 1)
    limits = dataclasses.replace(ch.config.limits, lease_s=0.3, max_attempts=2)
    w = worker(ch, config=dataclasses.replace(ch.config, limits=limits))
    assert w.claim()[4] == 1
    time.sleep(0.4)
    assert w.claim()[4] == 2
    time.sleep(0.4)
    assert w.claim() is None
    row = rows(ch)[sid]
    assert row.status == "failed" and "interrupted 2 times" in row.reason and row.lease_until is None


def test_the_time_limit_stops_a_scoring(ch, tmp_path):
    [sid] = queue(ch, tmp_path, 1)
    limits = dataclasses.replace(ch.config.limits, score_timeout_s=0.5, lease_s=0.6)
    w = worker(ch, config=dataclasses.replace(ch.config, limits=limits), hold=30)
    start = time.monotonic()
    assert w.run_once()
    assert time.monotonic() - start < 5
    row = rows(ch)[sid]
    assert row.status == "failed" and "longer than the limit of 0.5 s" in row.reason


def test_concurrent_workers_score_each_job_once(ch, tmp_path):
    ids = queue(ch, tmp_path, 12, bad=3)
    claimed: list[int] = []
    original = Worker.claim

    def recording(self):
        job = original(self)
        if job is not None:
            claimed.append(job[0])
        return job

    workers = [worker(ch) for _ in range(3)]
    for w in workers:
        w.claim = recording.__get__(w)
    threads = [threading.Thread(target=w.run, kwargs={"until_idle": True}) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(claimed) == ids                     # every job claimed exactly once
    final = rows(ch)
    assert [final[i].status for i in ids] == ["failed"] * 3 + ["scored"] * 9
    assert all(final[i].attempts == 1 and final[i].claim is None for i in ids)


def test_migrations_upgrade_and_downgrade(tmp_path, db_url):
    from iqarena.challenge.db import database_url

    engine = make_engine(database_url(tmp_path, db_url))
    try:
        migrate(engine)
        assert schema_revision(engine) == "0001"
        tables = set(inspect(engine).get_table_names())
        assert {"teams", "users", "sessions", "api_tokens", "login_attempts", "submissions"} <= tables
        migrate(engine)                                 # idempotent
        from alembic import command

        from iqarena.challenge.db import _alembic_config
        with engine.begin() as conn:
            command.downgrade(_alembic_config(conn), "base")
        assert not {"teams", "submissions"} & set(inspect(engine).get_table_names())
        migrate(engine)
        assert schema_revision(engine) == "0001"
    finally:
        engine.dispose()
