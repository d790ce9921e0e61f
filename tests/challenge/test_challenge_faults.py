"""Faults, with real processes: a worker killed (SIGKILL) while scoring, and the server killed and started again
while clients upload. Every submission ends scored or failed with a reason; none is lost or duplicated."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import httpx
from .challenge_util import LiveServer, bearer, good_zip, user_with_token
from sqlalchemy import select

from iqarena.challenge.db import Submission, User
from iqarena.challenge.worker import Worker


def wait_for(predicate, timeout: float, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s")


def rows(ch):
    with ch.Session() as s:
        return list(s.scalars(select(Submission).order_by(Submission.id)))


def test_a_worker_killed_while_scoring_leaves_the_job_to_be_taken_again(make_challenge, db_url, tmp_path):
    ch = make_challenge(db_url, limits="daily = 50\ntotal = 50\nlease_s = 1\nscore_timeout_s = 30\nmax_attempts = 3")
    user_id, _, _ = user_with_token(ch, "alice", team="A")
    with ch.Session() as s:
        user = s.get(User, user_id)
        s.expunge(user)
    ids = []
    for i in range(3):
        incoming = ch.receive()
        incoming.write(good_zip(tmp_path / f"{i}.zip", seed=i).read_bytes())
        ids.append(ch.submit(user, "dev", incoming, f"{i}.zip")[0].id)
    cmd = [sys.executable, "-m", "iqarena.challenge.worker", str(ch.root), "--hold", "30", "--poll", "0.1"]
    victim = subprocess.Popen(cmd + (["--database", db_url] if db_url else []))
    try:
        first = wait_for(lambda: [r.id for r in rows(ch) if r.status == "scoring"], 60)[0]
        children = wait_for(lambda: subprocess.run(["pgrep", "-P", str(victim.pid)], capture_output=True,
                                                   text=True).stdout.split(), 10)
        victim.send_signal(signal.SIGKILL)                 # mid-scoring: its forked scorer is holding the job
        victim.wait(10)
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()
    # the scoring child dies with its worker
    wait_for(lambda: all(not os.path.exists(f"/proc/{c}") or _zombie(c) for c in children), 10)
    assert rows(ch)[0].status == "scoring"                 # still leased to the dead worker
    stop = threading.Event()
    other = Worker(ch.root, db_url, config=ch.config, engine=ch.engine, poll=0.1)
    thread = threading.Thread(target=other.run, args=(stop,), daemon=True)
    thread.start()
    try:
        done = wait_for(lambda: (lambda rs: rs if all(r.status in ("scored", "failed") for r in rs) else None)(
            rows(ch)), 60, 0.2)
    finally:
        stop.set()
        thread.join(30)
    assert [r.id for r in done] == ids                           # none lost, none added
    assert all(r.status == "scored" and r.main > 0 for r in done), [(r.status, r.reason) for r in done]
    assert {r.id: r.attempts for r in done} == {first: 2, **{i: 1 for i in ids if i != first}}
    assert all(r.claim is None and r.lease_until is None for r in done)


def _zombie(pid) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def test_server_restarts_during_uploads_lose_and_duplicate_nothing(make_challenge, db_url, tmp_path):
    ch = make_challenge(db_url, limits="daily = 100\ntotal = 100\nlease_s = 2")
    tokens = [user_with_token(ch, f"user{i}", team=f"T{i}")[1] for i in range(4)]
    payload = good_zip(tmp_path / "g.zip").read_bytes()
    server = LiveServer(ch.root, db_url, workers=0).start()
    port = server.port
    accepted: dict[str, int] = {}
    keys: list[str] = []
    lock = threading.Lock()

    def client(token: str) -> None:
        for _ in range(5):
            key = uuid.uuid4().hex
            with lock:
                keys.append(key)
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:           # retry with the same key until the server answers
                try:
                    r = httpx.post(f"http://127.0.0.1:{port}/api/v1/phases/dev/submissions", content=payload,
                                   headers={**bearer(token), "Content-Type": "application/zip",
                                            "Idempotency-Key": key}, timeout=10)
                    if r.status_code in (200, 201):
                        with lock:
                            accepted[key] = r.json()["id"]
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
            time.sleep(0.05)

    threads = [threading.Thread(target=client, args=(t,)) for t in tokens]
    for t in threads:
        t.start()
    wait_for(lambda: len(accepted) >= 4, 60, 0.05)
    server.stop(kill=True)                                  # SIGKILL the server and its worker mid-stream
    time.sleep(0.5)
    server = LiveServer(ch.root, db_url, workers=0, port=port).start()
    stop = threading.Event()
    worker = threading.Thread(target=Worker(ch.root, db_url, config=ch.config, engine=ch.engine, poll=0.1).run,
                              args=(stop,), daemon=True)
    worker.start()
    try:
        for t in threads:
            t.join(120)
        assert len(keys) == 20 and len(accepted) == 20
        done = wait_for(lambda: (lambda rs: rs if len(rs) == 20 and all(r.status == "scored" for r in rs)
                                 else None)(rows(ch)), 90, 0.3)
        assert sorted(r.idempotency_key for r in done) == sorted(keys)        # every one, once
        assert {r.idempotency_key: r.id for r in done} == accepted            # the ids the clients were given
    finally:
        stop.set()
        worker.join(30)
        server.stop()
    assert server.strays() == []
