"""`iqarena challenge` commands: init (config checks, migrations), organiser, submit through the JSON API against a
live server, rescore, export, and the demo folder; the offline `submission check` agrees with the server."""

from __future__ import annotations

import json
import threading

import pytest
from .challenge_util import ThreadServer, good_zip, raw_zip, user_with_token, write_config
from typer.testing import CliRunner

from iqarena.challenge.app import create_app
from iqarena.challenge.config import load_config, read_config_file
from iqarena.challenge.service import Challenge
from iqarena.challenge.worker import Worker
from iqarena.cli import app
from iqarena.errors import InputError

runner = CliRunner()


def run(*args, env=None):
    result = runner.invoke(app, [str(a) for a in args], env=env)
    return result


def test_init_checks_the_config_and_copies_the_phase_files(tmp_path):
    config = write_config(tmp_path / "src")
    r = run("challenge", "init", tmp_path / "ch", "--config", config, "--organiser", "boss",
            env={"IQARENA_PASSWORD": "boss-password"})
    assert r.exit_code == 0, r.output
    assert "phases: dev (40 images), test (30 images)" in r.output and "created organiser boss" in r.output
    assert "(schema 0001)" in r.output
    loaded = load_config(tmp_path / "ch")
    assert loaded.phase("dev").labels == tmp_path / "ch" / "phases" / "dev" / "labels.txt"
    assert loaded.phase("test").hidden and not loaded.phase("dev").hidden
    assert loaded.limits.daily == 3 and loaded.digits == 3
    bad = tmp_path / "bad.toml"
    bad.write_text(config.read_text().replace("end = ", "end = 2001-01-01T00:00:00Z\nold_end = ", 1))
    with pytest.raises(InputError, match="is not after start"):
        read_config_file(bad)
    naive = tmp_path / "naive.toml"
    naive.write_text(config.read_text().replace("Z\n", "\n"))
    with pytest.raises(InputError, match="has no time zone"):
        read_config_file(naive)


def test_submit_rescore_and_export_from_the_terminal(ch_sqlite, tmp_path):
    ch = ch_sqlite
    _, token, _ = user_with_token(ch, "alice", team="A")
    sub = good_zip(tmp_path / "sub.zip", noise=80.0)
    stop = threading.Event()
    worker = Worker(ch.root, None, config=ch.config, engine=ch.engine, poll=0.1)
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        with ThreadServer(create_app(ch.root, None, challenge=ch)) as server:
            r = run("challenge", "submit", sub, "--server", server.base, "--phase", "dev", env={"IQARENA_TOKEN": token})
            assert r.exit_code == 0, r.output
            assert "(dev): scored" in r.output and "main: 1." in r.output and "scorer_version: 0.1.0+" in r.output
            # no phase named while two are open: refused with the fix
            r = run("challenge", "submit", sub, "--server", server.base, "--token", token)
            assert r.exit_code != 0 and "name one with --phase" in str(r.exception)
            # the local check refuses what the server would, before uploading
            r = run("challenge", "submit", raw_zip(tmp_path / "x.zip", {"output.txt": b"a,1\n"}), "--server",
                    server.base, "--token", token, "--phase", "dev")
            assert isinstance(r.exception, InputError) and "holds no readme.txt" in str(r.exception)
            r = run("challenge", "submit", sub, "--server", server.base, "--token", "iqa_wrong", "--phase", "dev")
            assert "refused (401)" in str(r.exception)
    finally:
        stop.set()
        thread.join(30)
    r = run("challenge", "rescore", ch.root, "--phase", "dev")
    assert r.exit_code == 0 and "queued 1 submissions" in r.output
    Worker(ch.root, None, config=ch.config, engine=ch.engine).run(until_idle=True)
    r = run("challenge", "export", ch.root, "--phase", "dev", "--format", "json")
    board = json.loads(r.output)["leaderboard"]
    assert [(row["rank"], row["team"]) for row in board] == [(1, "A")] and board[0]["main"] > 1.0
    r = run("challenge", "export", ch.root, "--phase", "dev", "--what", "submissions")
    assert r.output.splitlines()[0].startswith("id,team,phase,filename") and ",scored," in r.output


def test_offline_check_matches_the_server(ch_sqlite, tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("".join(f"{n}\n" for n in ch_sqlite.config.phase("dev").names))
    good = good_zip(tmp_path / "good.zip")
    r = run("submission", "check", good, "--names", names)
    assert r.exit_code == 0 and "OK" in r.output and "one for each of the 40 expected names" in r.output
    short = good_zip(tmp_path / "short.zip", n=39)
    r = run("submission", "check", short, "--names", names)
    assert isinstance(r.exception, InputError)
    offline = str(r.exception).replace(str(short), "short.zip")
    _, token, _ = user_with_token(ch_sqlite, "alice", team="A")
    from fastapi.testclient import TestClient
    client = TestClient(create_app(ch_sqlite.root, None, challenge=ch_sqlite))
    sid = client.post("/api/v1/phases/dev/submissions", content=short.read_bytes(),
                      headers={"Authorization": f"Bearer {token}", "X-Filename": "short.zip"}).json()["id"]
    Worker(ch_sqlite.root, None, config=ch_sqlite.config, engine=ch_sqlite.engine).run(until_idle=True)
    online = client.get(f"/api/v1/submissions/{sid}", headers={"Authorization": f"Bearer {token}"}).json()["reason"]
    assert online == offline and "no score for 1 of the 40 expected images" in online


def test_demo_builds_a_working_challenge(tmp_path):
    r = run("challenge", "demo", "--dir", tmp_path / "demo", "--build-only")
    assert r.exit_code == 0, r.output
    assert "organiser login: organiser / " in r.output
    ch = Challenge.open(tmp_path / "demo")
    try:
        assert [(p.name, len(p.names), p.hidden) for p in ch.config.phases] == [("dev", 72, False), ("test", 48, True)]
        assert all(p.is_open() for p in ch.config.phases)
        from iqarena.submission import check_submission
        example = tmp_path / "demo" / "source" / "dev" / "example-psnr.zip"
        assert len(check_submission(example, ch.config.phase("dev").names)) == 72
    finally:
        ch.engine.dispose()
    # a folder that is not a challenge is never replaced
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("x")
    r = run("challenge", "demo", "--dir", tmp_path / "other", "--build-only")
    assert isinstance(r.exception, InputError) and (tmp_path / "other" / "keep.txt").exists()
