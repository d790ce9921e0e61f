"""The scoring worker: the database is the queue.

A submission row is a job. ``claim`` takes the oldest queued job, or one whose lease has expired (its
worker died), in one atomic statement (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite serialises
writers), and stamps it with a fresh claim token and a lease. The scoring runs in a separate process
(forked from the worker) under a wall-clock limit while the worker renews the lease; the result is written only
under the same claim token, so a worker that lost its job cannot overwrite a newer claim. The
scoring process is forked once per worker and reused; it is replaced when it dies or overruns. A job
claimed ``max_attempts`` times without finishing fails with a reason: nothing stays "scoring" forever.

``python -m iqarena.challenge.worker DIR [--database URL]`` runs one worker (``iqarena challenge
serve`` starts and supervises them).
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
import uuid
from datetime import timedelta
from pathlib import Path

from sqlalchemy import bindparam, text

from ..errors import InputError
from .config import Config, load_config, now_utc
from .db import UTC, database_url, make_engine
from .storage import stored_path

log = logging.getLogger("iqarena.challenge.worker")

INTERNAL = "scoring failed on the server's side; the organisers can see the cause and rescore it."

_CLAIM = """
UPDATE submissions SET status = 'scoring', claim = :claim, lease_until = :lease, attempts = attempts + 1
WHERE id = (SELECT id FROM submissions
            WHERE status = 'queued' OR (status = 'scoring' AND lease_until < :now)
            ORDER BY id LIMIT 1{lock})
RETURNING id, phase, sha256, filename, attempts
"""
_EXHAUSTED = """
UPDATE submissions SET status = 'failed', claim = NULL, lease_until = NULL, finished_at = :now,
       reason = :reason
WHERE status = 'scoring' AND lease_until < :now AND attempts >= :max
"""


def _scorer(conn, phases: dict) -> None:
    """The scoring process (forked from its worker, so the labels and the scoring code are already loaded): score
    each job it is sent, answer one message per job. It is replaced when it dies or overruns the time limit."""
    from .scoring import score_file

    if sys.platform == "linux":  # die with the worker, however it dies
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
        if os.getppid() == 1:
            os._exit(1)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _drop_inherited(keep=conn.fileno())
    while True:
        try:
            phase, path, shown, hold = conn.recv()
        except (EOFError, OSError):
            return
        try:
            if hold:
                time.sleep(hold)
            names, labels = phases[phase]
            conn.send(("ok", score_file(path, names, labels, shown)))
        except InputError as exc:
            conn.send(("input", str(exc)))
        except BaseException:  # noqa: BLE001 - reported to the organisers, not to the participant
            conn.send(("internal", traceback.format_exc()))


def _drop_inherited(keep: int) -> None:
    """Point every inherited descriptor but stdio and ``keep`` at /dev/null. A worker that runs inside another
    process (the tests, an embedding application) would otherwise keep that process's sockets and pipes open in
    this long-lived child: a connection the server closed would stay open to its client, a pipe would never
    reach its end. /dev/null rather than closing, so a finalizer that closes an old number later cannot close a
    file this process opened itself."""
    folder = "/proc/self/fd"
    if not os.path.isdir(folder):
        return
    null = os.open(os.devnull, os.O_RDWR)
    try:
        for name in os.listdir(folder):
            fd = int(name)
            if fd in (keep, null) or fd <= 2:
                continue
            try:
                os.fstat(fd)
                os.dup2(null, fd)
            except OSError:
                pass
    finally:
        os.close(null)


class Worker:
    """One scoring worker over a challenge folder's database."""

    def __init__(self, root: str | Path, url: str | None = None, *, config: Config | None = None,
                 hold: float = 0.0, poll: float = 0.5, engine=None):
        self.root = Path(root)
        self.config = config or load_config(root)
        self.engine = engine or make_engine(database_url(root, url), pool_size=2)
        self.hold, self.poll = hold, poll
        self.name = f"{os.uname().nodename}:{os.getpid()}"
        self._scoring = None  # (process, connection) of the scoring process, started on first use
        self._lock = "" if self.engine.dialect.name == "sqlite" else " FOR UPDATE SKIP LOCKED"
        for phase in self.config.phases:
            phase.expected  # read the labels once, before any fork
        from .scoring import scorer_version

        scorer_version()  # the scoring code imported and hashed once here, so a forked child starts at once

    def _lease(self):
        return now_utc() + timedelta(seconds=self.config.limits.lease_s)

    def claim(self):
        """The next job as (id, phase, sha256, filename, attempts, claim), or None."""
        now, limits = now_utc(), self.config.limits
        token = uuid.uuid4().hex
        with self.engine.begin() as conn:
            conn.execute(_typed(_EXHAUSTED, "now"), {"now": now, "max": limits.max_attempts,
                                            "reason": f"scoring was interrupted {limits.max_attempts} times (the "
                                                      "worker stopped); the organisers can rescore it."})
            row = conn.execute(_typed(_CLAIM.format(lock=self._lock), "lease", "now"),
                               {"claim": token, "lease": self._lease(), "now": now}).first()
        return None if row is None else (*row, token)

    def _renew(self, job_id: int, token: str) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(_typed("UPDATE submissions SET lease_until = :lease WHERE id = :id AND claim = :claim",
                                       "lease"), {"lease": self._lease(), "id": job_id, "claim": token}).rowcount == 1

    def _finish(self, job_id: int, token: str, values: dict) -> bool:
        values = {**values, "claim": None, "lease_until": None, "finished_at": now_utc()}
        sets = ", ".join(f"{k} = :{k}" for k in values)
        with self.engine.begin() as conn:
            return conn.execute(_typed(f"UPDATE submissions SET {sets} WHERE id = :id AND claim = :token",
                                       "finished_at"),
                                {**values, "id": job_id, "token": token}).rowcount == 1

    def run_once(self) -> bool:
        """Claim and score one job; False when the queue is empty."""
        job = self.claim()
        if job is None:
            return False
        job_id, phase_name, sha, filename, attempts, token = job
        log.info("job %s (phase %s, attempt %s) claimed by %s", job_id, phase_name, attempts, self.name)
        try:
            self.config.phase(phase_name)
        except InputError:
            self._finish(job_id, token, {"status": "failed", "reason": f"phase {phase_name!r} no longer exists."})
            return True
        outcome = self._score(job_id, token, stored_path(self.root, sha), phase_name, filename)
        if outcome is None:
            log.warning("job %s: claim lost (rescored or lease expired); result dropped", job_id)
            return True
        kind, payload = outcome
        if kind == "ok":
            values = {"status": "scored", "reason": None, **payload}
        elif kind == "input":
            values = {"status": "failed", "reason": payload[:2000]}
        else:
            log.error("job %s: %s", job_id, payload)
            values = {"status": "failed", "reason": payload if kind == "limit" else INTERNAL}
        self._finish(job_id, token, values)
        log.info("job %s %s", job_id, values["status"])
        return True

    def _scorer(self):
        if self._scoring is None or not self._scoring[0].is_alive():
            self._close_scorer()
            ctx = multiprocessing.get_context("fork")
            mine, theirs = ctx.Pipe()
            phases = {p.name: p.expected for p in self.config.phases}
            proc = ctx.Process(target=_scorer, args=(theirs, phases), daemon=True)
            proc.start()
            theirs.close()
            self._scoring = (proc, mine)
        return self._scoring

    def _close_scorer(self) -> None:
        if self._scoring is not None:
            proc, conn = self._scoring
            if proc.is_alive():
                proc.kill()
            proc.join(5)
            conn.close()
            self._scoring = None

    def _score(self, job_id, token, path: Path, phase: str, shown: str):
        """("ok", aggregates) | ("input", reason) | ("internal", traceback) | ("limit", reason); None when the
        claim was lost while scoring. The scoring runs in a separate process, killed at the time limit."""
        limits = self.config.limits
        proc, conn = self._scorer()
        conn.send((phase, str(path), shown, self.hold))
        deadline = time.monotonic() + limits.score_timeout_s
        renew_every = max(0.2, limits.lease_s / 3)
        while True:
            wait = min(renew_every, deadline - time.monotonic())
            if wait > 0 and conn.poll(wait):
                try:
                    return conn.recv()
                except (EOFError, OSError):
                    proc.join(5)
                    code = proc.exitcode
                    self._close_scorer()
                    return "internal", f"the scoring process stopped (exit code {code})"
            if time.monotonic() >= deadline:
                self._close_scorer()
                return "limit", f"scoring took longer than the limit of {limits.score_timeout_s:g} s and was stopped."
            if not proc.is_alive() and not conn.poll():
                code = proc.exitcode
                self._close_scorer()
                return "internal", f"the scoring process stopped (exit code {code})"
            if not self._renew(job_id, token):
                self._close_scorer()  # its answer would belong to a job this worker no longer holds
                return None

    def run(self, stop: threading.Event | None = None, *, until_idle: bool = False) -> int:
        """Score jobs until ``stop`` is set (or, with ``until_idle``, the queue is empty); the count scored."""
        stop = stop or threading.Event()
        done = 0
        while not stop.is_set():
            try:
                worked = self.run_once()
            except Exception:  # noqa: BLE001 - a database hiccup must not end the worker
                log.exception("worker %s: claim failed; retrying", self.name)
                worked = False
            done += worked
            if not worked:
                if until_idle:
                    break
                stop.wait(self.poll)
        self._close_scorer()
        return done


def _typed(sql: str, *times: str):
    """A text statement whose named parameters bind as UTC datetimes (the same storage as the ORM's)."""
    return text(sql).bindparams(*(bindparam(name, type_=UTC()) for name in times))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="iqarena challenge scoring worker")
    parser.add_argument("root")
    parser.add_argument("--database", default=None)
    parser.add_argument("--hold", type=float, default=0.0, help="seconds to wait before each scoring (fault tests)")
    parser.add_argument("--poll", type=float, default=0.5)
    parser.add_argument("--parent", type=int, default=None, help="stop when this process is gone")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if args.parent is not None:
        def watch_parent():
            while not stop.wait(1.0):
                if os.getppid() != args.parent:
                    stop.set()
        threading.Thread(target=watch_parent, daemon=True).start()
    Worker(args.root, args.database, hold=args.hold, poll=args.poll).run(stop)


if __name__ == "__main__":
    main()
