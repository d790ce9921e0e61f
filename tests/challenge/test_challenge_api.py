"""The JSON API and the scoring path, on SQLite and PostgreSQL: uploads stored and queued, scored by a worker with
iqarena.evaluate's statistics, leaderboards, hidden phases, limits, idempotent retries, rescoring, exports."""

from __future__ import annotations

import csv
import io
import time
from datetime import datetime, timedelta, timezone

import pytest
from .challenge_util import bearer, good_zip, phase_labels, raw_zip, user_with_token
from fastapi.testclient import TestClient

from sqlalchemy import select, update

from iqarena.challenge.app import create_app
from iqarena.challenge.auth import revoke_token
from iqarena.challenge.db import ApiToken, Submission, Team, User
from iqarena.challenge.scoring import scorer_version
from iqarena.challenge.worker import Worker
from iqarena.evaluate import evaluate
from iqarena.submission import check_submission


def client_of(ch) -> TestClient:
    return TestClient(create_app(ch.root, ch.url, challenge=ch))


def worker_of(ch, **kw) -> Worker:
    return Worker(ch.root, ch.url, config=ch.config, engine=ch.engine, **kw)


def upload(client, token, path, phase="dev", key=None):
    headers = {**bearer(token), "Content-Type": "application/zip", "X-Filename": path.name}
    if key:
        headers["Idempotency-Key"] = key
    return client.post(f"/api/v1/phases/{phase}/submissions", content=path.read_bytes(), headers=headers)


def test_upload_is_scored_with_the_protocol(ch, tmp_path):
    client = client_of(ch)
    _, token, _ = user_with_token(ch, "alice", team="Team A")
    sub_zip = good_zip(tmp_path / "a.zip", noise=150.0)
    r = upload(client, token, sub_zip)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "queued" and body["team"] == "Team A" and body["filename"] == "a.zip"
    # stored before the answer: the row and the file
    with ch.Session() as s:
        assert ch.file_of(s.get(Submission, body["id"])).read_bytes() == sub_zip.read_bytes()
    assert worker_of(ch).run(until_idle=True) == 1
    got = client.get(f"/api/v1/submissions/{body['id']}", headers=bearer(token)).json()
    # the same numbers as the protocol code on the same file
    names, labels = zip(*phase_labels("dev", 40, 1))
    expected = evaluate(check_submission(sub_zip, names).scores, labels)
    assert got["status"] == "scored" and got["reason"] is None
    assert got["main"] == pytest.approx(expected.main, abs=1e-12)
    assert got["srcc"] == pytest.approx(expected.srcc, abs=1e-12)
    assert got["plcc"] == pytest.approx(expected.plcc, abs=1e-12)
    assert got["n"] == 40 and got["runtime"] == 0.25 and got["gpu"] is True and got["extra_data"] is False
    assert got["scorer_version"] == scorer_version() and got["scorer_version"].startswith("0.1.0+")
    board = client.get("/api/v1/phases/dev/leaderboard").json()
    assert board["visible"] and board["columns"] == ["main", "srcc", "plcc", "runtime", "device", "extra_data"]
    assert board["rows"] == [{"rank": 1, "team": "Team A", "submission": body["id"], "main": round(expected.main, 3),
                              "srcc": round(expected.srcc, 3), "plcc": round(expected.plcc, 3), "runtime": 0.25,
                              "device": "GPU", "extra_data": "No"}]
    file = client.get(f"/api/v1/submissions/{body['id']}/file", headers=bearer(token))
    assert file.status_code == 200 and file.content == sub_zip.read_bytes()


def test_leaderboard_best_per_team_ties_to_the_earlier(ch, tmp_path):
    client = client_of(ch)
    _, ta, _ = user_with_token(ch, "alice", team="A")
    _, tb, _ = user_with_token(ch, "bob", team="B")
    _, tc, _ = user_with_token(ch, "carol", team="C")
    _, org, _ = user_with_token(ch, "org", organiser=True)
    worse = good_zip(tmp_path / "worse.zip", noise=400.0, seed=1)
    better = good_zip(tmp_path / "better.zip", noise=50.0, seed=2)
    ids = {}
    ids["a_worse"] = upload(client, ta, worse).json()["id"]
    ids["a_better"] = upload(client, ta, better).json()["id"]
    ids["b_same"] = upload(client, tb, better).json()["id"]      # same scores as A's best, later
    ids["c_worse"] = upload(client, tc, worse).json()["id"]
    worker_of(ch).run(until_idle=True)
    rows = client.get("/api/v1/phases/dev/leaderboard").json()["rows"]
    assert [(r["rank"], r["team"], r["submission"]) for r in rows] == [
        (1, "A", ids["a_better"]), (2, "B", ids["b_same"]), (3, "C", ids["c_worse"])]
    assert rows[0]["main"] == rows[1]["main"] > rows[2]["main"]
    # the organiser hides A's best and disqualifies C
    assert client.post(f"/api/v1/submissions/{ids['a_better']}/hide", json={"hidden": True},
                       headers=bearer(org)).json() == {"id": ids["a_better"], "hidden": True}
    team_c = client.get(f"/api/v1/submissions/{ids['c_worse']}", headers=bearer(org)).json()["team_id"]
    assert client.post(f"/api/v1/teams/{team_c}/disqualify", json={}, headers=bearer(org)).status_code == 200
    rows = client.get("/api/v1/phases/dev/leaderboard").json()["rows"]
    assert [(r["team"], r["submission"]) for r in rows] == [("B", ids["b_same"]), ("A", ids["a_worse"])]
    # participants cannot do that
    assert client.post(f"/api/v1/submissions/{ids['b_same']}/hide", json={}, headers=bearer(tb)).status_code == 403


def test_hidden_phase_shows_scores_only_after_it_closes(make_challenge, db_url, tmp_path):
    end = datetime.now(timezone.utc) + timedelta(seconds=2.5)
    ch = make_challenge(db_url, test_end=end)
    client = client_of(ch)
    _, token, _ = user_with_token(ch, "alice", team="A")
    _, org, _ = user_with_token(ch, "org", organiser=True)
    sid = upload(client, token, good_zip(tmp_path / "t.zip", phase="test", n=30), phase="test").json()["id"]
    worker_of(ch).run(until_idle=True)
    mine = client.get(f"/api/v1/submissions/{sid}", headers=bearer(token)).json()
    assert mine["status"] == "scored" and "main" not in mine and "srcc" not in mine and "plcc" not in mine
    assert "hidden" in mine["note"]
    board = client.get("/api/v1/phases/test/leaderboard", headers=bearer(token)).json()
    assert board["visible"] is False and board["rows"] == []
    listed = client.get("/api/v1/submissions", headers=bearer(token)).json()["submissions"]
    assert all("main" not in s for s in listed)
    page = client.get("/phases/test").text
    assert "hidden until it ends" in page
    assert client.get("/api/v1/phases/test/leaderboard", headers=bearer(org)).json()["rows"][0]["submission"] == sid
    time.sleep(max(0.0, (end - datetime.now(timezone.utc)).total_seconds()) + 0.2)
    mine = client.get(f"/api/v1/submissions/{sid}", headers=bearer(token)).json()
    assert mine["main"] > 0
    assert client.get("/api/v1/phases/test/leaderboard").json()["rows"][0]["submission"] == sid
    # closed: no more uploads
    r = upload(client, token, tmp_path / "t.zip", phase="test")
    assert r.status_code == 403 and "not open" in r.json()["error"]


def test_limits_count_failed_submissions_separately(ch, tmp_path):
    client = client_of(ch)
    _, token, _ = user_with_token(ch, "alice", team="A")
    bad = raw_zip(tmp_path / "bad.zip", {"output.txt": b"x.bmp,1\n"})      # no readme
    w = worker_of(ch)
    for _ in range(4):                    # daily = 3, but failed ones are not counted in it
        assert upload(client, token, bad).status_code == 201
        w.run(until_idle=True)
    r = upload(client, token, bad)        # failed_daily = 4: their own cap
    assert r.status_code == 429 and "4 failed submissions today" in r.json()["error"]
    subs = client.get("/api/v1/submissions", headers=bearer(token)).json()["submissions"]
    assert [s["status"] for s in subs] == ["failed"] * 4
    assert all("readme.txt" in s["reason"] for s in subs)


def test_daily_and_total_limits(make_challenge, db_url, tmp_path):
    ch = make_challenge(db_url, limits="daily = 2\ntotal = 3\nfailed_daily = 10")
    client = client_of(ch)
    _, token, _ = user_with_token(ch, "alice", team="A")
    with ch.Session() as s:
        invite = s.scalars(select(Team.invite)).one()
    _, mate, _ = user_with_token(ch, "bob", invite=invite)
    good = good_zip(tmp_path / "g.zip")
    bad = raw_zip(tmp_path / "bad.zip", {"output.txt": b"x.bmp,1\n"})
    assert upload(client, token, good).status_code == 201
    assert upload(client, mate, bad).status_code == 201           # the team mate's count is the team's
    r = upload(client, token, good)
    assert r.status_code == 429 and "2 submissions for today (UTC)" in r.json()["error"]
    worker_of(ch).run(until_idle=True)                             # the bad one fails: it is no longer counted
    assert upload(client, token, good).status_code == 201
    assert upload(client, token, good).status_code == 429
    # the total: move today's submissions to yesterday, then one more fits, and then the total (3) refuses
    with ch.Session.begin() as s:
        s.execute(update(Submission).values(created_at=datetime.now(timezone.utc) - timedelta(days=1)))
    assert upload(client, token, good).status_code == 201
    r = upload(client, token, good)
    assert r.status_code == 429 and "all 3 submissions" in r.json()["error"]
    # a refused upload of new content leaves no file behind that no submission points to
    other = raw_zip(tmp_path / "other.zip", {"output.txt": b"y.bmp,2\n"})
    assert upload(client, token, other).status_code == 429
    from iqarena.challenge.storage import UPLOADS

    with ch.Session() as s:
        assert {p.stem for p in (ch.root / UPLOADS).rglob("*.zip")} == set(s.scalars(select(Submission.sha256)))
    # the other phase has its own quota
    assert upload(client, token, good_zip(tmp_path / "t.zip", "test", 30), phase="test").status_code == 201


def test_idempotency_key_gives_one_submission(ch, tmp_path):
    client = client_of(ch)
    _, token, _ = user_with_token(ch, "alice", team="A")
    good = good_zip(tmp_path / "g.zip")
    first = upload(client, token, good, key="k-123")
    again = upload(client, token, good, key="k-123")
    assert first.status_code == 201 and again.status_code == 200 and first.json()["id"] == again.json()["id"]
    assert len(client.get("/api/v1/submissions", headers=bearer(token)).json()["submissions"]) == 1


def test_rescore_records_the_scoring_version_and_export(ch, tmp_path):
    client = client_of(ch)
    _, token, _ = user_with_token(ch, "alice", team="A <i>x</i>")
    _, org, _ = user_with_token(ch, "org", organiser=True)
    ids = [upload(client, token, good_zip(tmp_path / f"{i}.zip", seed=i)).json()["id"] for i in range(2)]
    w = worker_of(ch)
    w.run(until_idle=True)
    assert client.post(f"/api/v1/submissions/{ids[0]}/rescore", headers=bearer(token)).status_code == 403
    with ch.Session.begin() as s:   # as if scored by an older scoring code
        s.execute(update(Submission).values(scorer_version="0.0.1+old", main=0.5))
    assert client.post("/api/v1/phases/dev/rescore", headers=bearer(org)).json() == {"queued": 2}
    assert client.get(f"/api/v1/submissions/{ids[0]}", headers=bearer(token)).json()["status"] == "queued"
    w.run(until_idle=True)
    subs = client.get("/api/v1/submissions", headers=bearer(org)).json()["submissions"]
    assert {s["scorer_version"] for s in subs} == {scorer_version()} and all(s["main"] > 0.5 for s in subs)
    assert client.post(f"/api/v1/submissions/{ids[1]}/rescore", headers=bearer(org)).json() == {"queued": 1}
    w.run(until_idle=True)
    text = client.get("/api/v1/phases/dev/export/leaderboard?format=csv", headers=bearer(org)).text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == ["rank", "team", "submission", "main", "srcc", "plcc", "runtime", "device", "extra_data"]
    assert len(rows) == 1 and rows[0]["team"] == "A <i>x</i>" and rows[0]["rank"] == "1"
    data = client.get("/api/v1/phases/dev/export/submissions?format=json", headers=bearer(org)).json()
    assert [s["id"] for s in data["submissions"]] == ids and all(s["status"] == "scored" for s in data["submissions"])
    assert client.get("/api/v1/phases/dev/export/submissions", headers=bearer(token)).status_code == 403


def test_token_login_and_revocation(ch):
    client = client_of(ch)
    user_with_token(ch, "alice", team="A")
    r = client.post("/api/v1/token", json={"name": "alice", "password": "password-alice", "label": "cli"})
    assert r.status_code == 200
    token = r.json()["token"]
    assert client.get("/api/v1/me", headers=bearer(token)).json() == {"user": "alice", "organiser": False,
                                                                        "team": {"id": 1, "name": "A"}}
    with ch.Session() as s:
        row = s.scalars(select(ApiToken).where(ApiToken.label == "cli")).one()
        assert token not in (row.token_hash, row.prefix) and len(row.token_hash) == 64
        token_id = row.id
    with ch.Session.begin() as s:
        revoke_token(s, s.get(User, 1), token_id)
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 401
    assert client.post("/api/v1/token", json={"name": "alice", "password": "wrong"}).status_code == 401
