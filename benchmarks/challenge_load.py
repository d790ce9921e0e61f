"""Load benchmark of the challenge platform (loopback only, bounded in time).

N concurrent clients (default 50), each its own team with its own API token, upload 1,650-line submissions (the
size of PIPAL's test set) to `iqarena challenge serve` for DURATION seconds; then the queue is drained (bounded) and
the database is read back. Reported: uploads/s, upload latency p50/p95/p99, time from upload to score (p50/p95/
max), failed, and lost (an upload answered 201 (or 200 on a retry) whose row is missing or not scored: must be 0).

    python benchmarks/challenge_load.py --duration 120 --clients 50                      # SQLite
    python benchmarks/challenge_load.py --duration 120 --clients 50 \\
        --postgres postgresql://iqarena:iqarena@127.0.0.1:5432/postgres                   # a temporary database

The server runs in its own process (uvicorn, 2 scoring workers); the clients run in this one (asyncio + httpx).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np


def build(root: Path, n_images: int, clients: int, url: str | None, timeout: float):
    from iqarena.challenge import init_challenge
    from iqarena.challenge.auth import create_token, create_user
    from iqarena.submission import Readme, pack_submission

    src = root / "src"
    src.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"A{i // 50:04d}_{i % 50:02d}_{i % 7:02d}.bmp" for i in range(n_images)]
    labels = rng.uniform(900, 1700, n_images)
    (src / "labels.txt").write_text("".join(f"{n},{s:.4f}\n" for n, s in zip(names, labels)))
    now = datetime.now(timezone.utc)
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    (src / "challenge.toml").write_text(f'''title = "load"
[limits]
daily = 1000000
total = 1000000
score_timeout_s = {timeout}
lease_s = 30
[[phases]]
name = "test"
start = {(now - timedelta(days=1)).strftime(fmt)}
end = {(now + timedelta(days=1)).strftime(fmt)}
labels = "labels.txt"
''')
    ch = init_challenge(root / "ch", src / "challenge.toml", url)
    tokens = []
    with ch.Session.begin() as s:
        for i in range(clients):
            user = create_user(s, f"client{i:03d}", "password-load")
            ch.create_team(s, user, f"team {i}")
            tokens.append(create_token(s, user, "load"))
    zips = []
    for i in range(clients):
        pred = {n: float(v) for n, v in zip(names, labels + rng.normal(0, 150, n_images))}
        zips.append(pack_submission(pred, Readme(0.1, True, False, f"client {i}"), src / f"sub{i}.zip").read_bytes())
    ch.engine.dispose()
    return ch, tokens, zips


async def run_clients(base: str, tokens, zips, duration: float):
    import httpx

    latencies, accepted, errors, retries = [], {}, {}, {}
    stop_at = time.monotonic() + duration
    limits = httpx.Limits(max_connections=len(tokens) + 10)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
        async def one(i):
            n = 0
            while time.monotonic() < stop_at:
                key = f"{i}-{n}-{secrets.token_hex(4)}"
                t0 = time.perf_counter()
                for attempt in range(5):   # as `iqarena challenge submit`: retry a dropped connection, same key
                    try:
                        r = await client.post("/api/v1/phases/test/submissions", content=zips[i],
                                              headers={"Authorization": f"Bearer {tokens[i]}", "Idempotency-Key": key,
                                                       "Content-Type": "application/zip", "X-Filename": f"c{i}.zip"})
                        status = r.status_code
                        break
                    except httpx.TransportError as exc:
                        status = type(exc).__name__
                        retries[status] = retries.get(status, 0) + 1
                        await asyncio.sleep(0.2)
                latencies.append(time.perf_counter() - t0)
                if status in (200, 201):
                    accepted[key] = r.json()["id"]
                else:
                    errors[str(status)] = errors.get(str(status), 0) + 1
                n += 1
        await asyncio.gather(*(one(i) for i in range(len(tokens))))
    return latencies, accepted, errors, retries


def measure(label: str, url: str | None, args) -> dict:
    from sqlalchemy import select

    from iqarena.challenge.db import Submission, database_url, make_engine

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ch, tokens, zips = build(root, args.images, args.clients, url, args.timeout)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        cmd = [sys.executable, "-m", "iqarena.challenge.server", str(ch.root), "--port", str(port),
               "--workers", str(args.workers)] + (["--database", url] if url else [])
        server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(root / "server.log", "w"),
                                  start_new_session=True)
        try:
            import httpx
            base = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            t0 = time.perf_counter()
            latencies, accepted, errors, retries = asyncio.run(run_clients(base, tokens, zips, args.duration))
            wall = time.perf_counter() - t0
            engine = make_engine(database_url(ch.root, url))
            drain_deadline = time.monotonic() + args.drain
            while time.monotonic() < drain_deadline:
                with engine.connect() as conn:
                    pending = conn.execute(select(Submission.id).where(Submission.status.in_(("queued", "scoring")))
                                           ).all()
                if not pending:
                    break
                time.sleep(1)
            drained = time.perf_counter() - t0
            with engine.connect() as conn:
                rows = {r.idempotency_key: r for r in conn.execute(select(Submission)).all()}
            engine.dispose()
        finally:
            os.killpg(server.pid, 15)
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, 9)
                server.wait()
    lost = [k for k, sid in accepted.items() if k not in rows or rows[k].id != sid or rows[k].status != "scored"]
    to_score = np.array([(r.finished_at - r.created_at).total_seconds() for r in rows.values()
                         if r.status == "scored"])
    lat = np.array(latencies)
    result = {
        "database": label, "clients": args.clients, "lines": args.images, "duration_s": round(wall, 1),
        "uploads_accepted": len(accepted), "uploads_per_s": round(len(accepted) / wall, 1),
        "latency_ms": {p: round(float(np.percentile(lat, q)) * 1000, 1) for p, q in (("p50", 50), ("p95", 95),
                                                                                       ("p99", 99))},
        "upload_to_score_s": {"p50": round(float(np.percentile(to_score, 50)), 2),
                              "p95": round(float(np.percentile(to_score, 95)), 2),
                              "max": round(float(to_score.max()), 2)} if to_score.size else None,
        "drained_after_s": round(drained, 1), "scored": int(sum(r.status == "scored" for r in rows.values())),
        "failed": int(sum(r.status == "failed" for r in rows.values())), "refused": errors, "retried": retries,
        "lost": len(lost),
        "workers": args.workers, "cpus": os.cpu_count(), "load_avg_before": round(os.getloadavg()[0], 1),
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=120)
    parser.add_argument("--images", type=int, default=1650)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--drain", type=float, default=600, help="most seconds to wait for the queue to empty")
    parser.add_argument("--timeout", type=float, default=120, help="score_timeout_s of the challenge")
    parser.add_argument("--postgres", default=None, help="a PostgreSQL URL: also run on a temporary database there")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    results = []
    if not args.skip_sqlite:
        results.append(measure("sqlite", None, args))
        print(json.dumps(results[-1]), flush=True)
    if args.postgres:
        import psycopg

        name = f"iqarena_load_{secrets.token_hex(3)}"
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            results.append(measure("postgresql", args.postgres.rsplit("/", 1)[0] + "/" + name, args))
            print(json.dumps(results[-1]), flush=True)
        finally:
            with psycopg.connect(args.postgres, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
