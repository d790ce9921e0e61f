"""Each attack of the issue, tried and refused: hostile zips (slip, symlink, bomb, too many members, not UTF-8),
oversize bodies (by length and while streaming), HTML in names and descriptions, CSRF, foreign submissions,
organiser pages, login flooding, open redirects; hashed secrets; hidden labels that never reach a participant."""

from __future__ import annotations

import re
import select as io_select
import socket

import httpx
import pytest
from .challenge_util import ThreadServer, bearer, good_zip, phase_labels, raw_zip, user_with_token
from fastapi.testclient import TestClient
from sqlalchemy import select

from iqarena.challenge.app import create_app
from iqarena.challenge.db import ApiToken, LoginSession, Submission, User
from iqarena.challenge.worker import Worker
from iqarena.submission import README as README_NAME
from iqarena.submission import Readme

README = Readme(0.1, False, False, "m").as_text().encode()


@pytest.fixture
def app(ch_sqlite):
    return create_app(ch_sqlite.root, None, challenge=ch_sqlite)


def form_token(client: TestClient, page: str = "/login") -> str:
    """The CSRF token of a form shown before login (its cookie is now in the client)."""
    return csrf_of(client.get(page).text)


def post_login(client: TestClient, **data):
    return client.post("/login", data={"csrf": form_token(client), **data}, follow_redirects=False)


def login_client(app, name: str) -> tuple[TestClient, str]:
    client = TestClient(app)
    r = post_login(client, name=name, password="password-" + name)
    assert r.status_code == 303, r.text
    return client, csrf_of(client.get("/team").text)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def read_response(sock: socket.socket) -> bytes:
    """One HTTP response off a raw socket: the headers, then as many body bytes as Content-Length says (one
    recv can return the headers alone; the body follows in the next segment)."""
    data = b""
    while b"\r\n\r\n" not in data:
        part = sock.recv(4096)
        if not part:
            return data
        data += part
    head, _, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    while length and len(body) < int(length.group(1)):
        part = sock.recv(4096)
        if not part:
            break
        body += part
    return head + b"\r\n\r\n" + body


def upload(client, token, path):
    return client.post("/api/v1/phases/dev/submissions", content=path.read_bytes(),
                       headers={**bearer(token), "Content-Type": "application/zip"})


def lines(n=40) -> bytes:
    return "".join(f"{d.split('/')[-1]},{i}\n" for i, (d, _) in enumerate(phase_labels("dev", n, 1))).encode()


def score_all(ch):
    Worker(ch.root, None, config=ch.config, engine=ch.engine).run(until_idle=True)


def test_hostile_zips_fail_with_a_reason(ch_sqlite, app, tmp_path):
    ch = ch_sqlite
    client = TestClient(app)
    _, token, _ = user_with_token(ch, "mallory", team="M")
    bomb = b"0" * (6 << 20)
    cases = {
        "slip": (raw_zip(tmp_path / "slip.zip", {"../../evil.txt": b"x", "output.txt": lines(), README_NAME: README}),
                 "absolute path or '..'"),
        "abs": (raw_zip(tmp_path / "abs.zip", {"/etc/output.txt": lines(), README_NAME: README}),
                "absolute path or '..'"),
        "link": (raw_zip(tmp_path / "link.zip", {"output.txt": b"/etc/passwd", README_NAME: README},
                         attrs={"output.txt": 0o120777 << 16}), "symbolic link"),
        "bomb": (raw_zip(tmp_path / "bomb.zip", {"output.txt": bomb, README_NAME: README}), "zip bomb"),
        "members": (raw_zip(tmp_path / "many.zip", {f"f{i}.txt": b"" for i in range(100)}), "over the cap of 64"),
        "folder": (raw_zip(tmp_path / "dir.zip", {"res/output.txt": lines(), "res/readme.txt": README}),
                   "Zip the files, not their folder"),
        "utf8": (raw_zip(tmp_path / "latin1.zip", {"output.txt": "café.bmp,1\n".encode("latin-1"),
                                                   README_NAME: README}), "is not UTF-8"),
        "nan": (raw_zip(tmp_path / "nan.zip", {"output.txt": lines().replace(b",3\n", b",nan\n"),
                                               README_NAME: README}), "nan"),
    }
    ids = {}
    with ch.Session.begin() as s:      # no daily limits for this test
        s.get(User, 1).organiser = True
    for name, (path, _) in cases.items():
        r = upload(client, token, path)
        assert r.status_code == 201, (name, r.text)
        ids[name] = r.json()["id"]
    score_all(ch)
    for name, (_, reason) in cases.items():
        sub = client.get(f"/api/v1/submissions/{ids[name]}", headers=bearer(token)).json()
        assert sub["status"] == "failed", name
        assert reason in sub["reason"], (name, sub["reason"])
        assert str(ch.root) not in sub["reason"]          # the server's paths are not shown
    assert not list(ch.root.parent.rglob("evil.txt"))
    # not a zip at all: refused at once
    r = client.post("/api/v1/phases/dev/submissions", content=b"<html>hi</html>", headers=bearer(token))
    assert r.status_code == 415 and "not a zip" in r.json()["error"]


def test_oversize_bodies_are_refused_while_streaming(ch_sqlite, app, tmp_path):
    ch = ch_sqlite
    _, token, _ = user_with_token(ch, "mallory", team="M")
    cap = ch.config.limits.upload_bytes
    sent = {"bytes": 0}

    def body():
        chunk = b"\0" * (1 << 20)
        for _ in range(200):            # 200 MiB if nobody stops it
            sent["bytes"] += len(chunk)
            yield chunk

    with ThreadServer(app) as server:
        # a declared length over the cap: answered 413 before the body is sent
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(f"POST /api/v1/phases/dev/submissions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}"
                         f"\r\nContent-Type: application/zip\r\nContent-Length: {cap + (1 << 20)}\r\n\r\n".encode())
            assert sock.recv(200).startswith(b"HTTP/1.1 413")
        # no declared length (chunked): refused once the bytes pass the cap, long before the 200 MiB end
        answer = b""
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(f"POST /api/v1/phases/dev/submissions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}"
                         "\r\nContent-Type: application/zip\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
            try:
                for chunk in body():
                    sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                    if io_select.select([sock], [], [], 0)[0]:
                        break
            except (BrokenPipeError, ConnectionResetError):
                pass
            answer = read_response(sock)
        assert answer.startswith(b"HTTP/1.1 413") and b"larger than the cap" in answer
        assert sent["bytes"] < cap + (8 << 20)
        # a form field without a length: the form cap
        big_form = httpx.post(f"{server.base}/team/create", content=b"name=" + b"a" * (300 << 10),
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert big_form.status_code == 413
    with ch.Session() as s:
        assert s.scalars(select(Submission)).all() == []
    assert list((ch.root / "uploads" / "tmp").iterdir()) == []     # the partial file is gone


def test_html_in_names_and_descriptions_is_escaped(ch_sqlite, app, tmp_path):
    ch = ch_sqlite
    evil = '<script>alert("x")</script>'
    _, token, _ = user_with_token(ch, "mallory", team=evil)
    user_with_token(ch, "org", organiser=True)
    readme = Readme(0.1, False, False, '<img src=x onerror="alert(1)">').as_text().encode()
    sid = upload(TestClient(app), token, raw_zip(tmp_path / "x.zip", {"output.txt": lines(),
                                                                      README_NAME: readme})).json()["id"]
    score_all(ch)
    client, _ = login_client(app, "mallory")
    org, _ = login_client(app, "org")
    pages = [client.get("/team").text, client.get(f"/submissions/{sid}").text, client.get("/phases/dev").text,
             client.get("/submissions").text, org.get("/admin").text]
    for html in pages:
        assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in pages[0]
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in pages[1]
    assert "Test &lt;b&gt;challenge&lt;/b&gt;" in pages[2]                  # the config's title too
    assert "script-src 'self'" in client.get("/").headers["content-security-policy"]


def test_forms_need_the_csrf_token_and_cookies_are_httponly(ch_sqlite, app):
    user_with_token(ch_sqlite, "alice")
    client = TestClient(app)
    r = client.post("/login", data={"name": "alice", "password": "password-alice"}, follow_redirects=False)
    assert r.status_code == 403 and "form expired" in r.text  # no token: refused, nobody logged in
    mine, forged = form_token(client), form_token(TestClient(app))  # another browser's token does not pass
    assert mine != forged
    r = client.post("/login", data={"name": "alice", "password": "password-alice", "csrf": forged},
                    follow_redirects=False)
    assert r.status_code == 403
    r = client.post("/register", data={"name": "mallory", "password": "password-mallory",
                                       "password2": "password-mallory"}, follow_redirects=False)
    assert r.status_code == 403
    r = post_login(client, name="alice", password="password-alice")
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    with ch_sqlite.Session() as s:        # the session token is stored hashed
        stored = s.scalars(select(LoginSession.token_hash)).one()
    assert client.cookies["iqarena_session"] not in stored and len(stored) == 64
    for data in ({"name": "T"}, {"name": "T", "csrf": "forged"}):
        r = client.post("/team/create", data=data)
        assert r.status_code == 403 and "CSRF" in r.text
    assert "Create a team" in client.get("/team").text               # nothing was made
    csrf = csrf_of(client.get("/team").text)
    assert client.post("/team/create", data={"name": "T", "csrf": csrf}, follow_redirects=False).status_code == 303


def test_no_one_sees_another_teams_submission(ch_sqlite, app, tmp_path):
    ch = ch_sqlite
    _, ta, _ = user_with_token(ch, "alice", team="A")
    _, tb, _ = user_with_token(ch, "bob", team="B")
    api = TestClient(app)
    sid = upload(api, ta, good_zip(tmp_path / "a.zip")).json()["id"]
    for path in (f"/api/v1/submissions/{sid}", f"/api/v1/submissions/{sid}/file", f"/api/v1/submissions/{sid + 99}"):
        r = api.get(path, headers=bearer(tb))
        assert r.status_code == 404 and r.json() == {"error": "no such submission."}
    assert api.get(f"/api/v1/submissions/{sid}").status_code == 401
    bob, _ = login_client(app, "bob")
    assert bob.get(f"/submissions/{sid}").status_code == 404
    assert bob.get(f"/submissions/{sid}/download").status_code == 404
    assert api.get("/api/v1/submissions", headers=bearer(tb)).json() == {"submissions": []}
    anonymous = TestClient(app)
    r = anonymous.get(f"/submissions/{sid}/download", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    alice, _ = login_client(app, "alice")
    assert alice.get(f"/submissions/{sid}/download").content == (tmp_path / "a.zip").read_bytes()


def test_organiser_pages_refuse_participants(ch_sqlite, app):
    _, token, _ = user_with_token(ch_sqlite, "alice", team="A")
    client, csrf = login_client(app, "alice")
    assert client.get("/admin").status_code == 403
    assert client.get("/admin/export/leaderboard/dev.csv").status_code == 403
    assert client.post("/admin/phases/dev/rescore", data={"csrf": csrf}).status_code == 403
    assert client.post("/admin/teams/1/disqualify", data={"csrf": csrf}).status_code == 403
    for path in ("/api/v1/phases/dev/rescore", "/api/v1/submissions/1/rescore", "/api/v1/teams/1/disqualify"):
        assert client.post(path, json={}, headers=bearer(token)).status_code == 403


def test_login_is_rate_limited_and_passwords_are_argon2(ch_sqlite, app):
    user_with_token(ch_sqlite, "alice")
    with ch_sqlite.Session() as s:
        assert s.scalars(select(User.password_hash)).one().startswith("$argon2id$")
        assert all(t.startswith("iqa_") is False for t in s.scalars(select(ApiToken.token_hash)))
    client = TestClient(app)
    for _ in range(5):
        r = client.post("/login", data={"name": "alice", "password": "nope-nope", "csrf": form_token(client)})
        assert r.status_code == 401 and "wrong user name or password" in r.text
    r = client.post("/login", data={"name": "alice", "password": "password-alice", "csrf": form_token(client)})
    assert r.status_code == 429 and "too many failed logins" in r.text
    assert client.post("/api/v1/token", json={"name": "alice", "password": "password-alice"}).status_code == 429


def test_redirects_stay_on_the_site(ch_sqlite, app):
    user_with_token(ch_sqlite, "alice")
    client = TestClient(app)
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        r = post_login(client, name="alice", password="password-alice", next=target)
        assert r.headers["location"] == "/"


def test_labels_never_reach_a_participant(ch_sqlite, app, tmp_path):
    ch = ch_sqlite
    _, token, _ = user_with_token(ch, "alice", team="A")
    api = TestClient(app)
    good = upload(api, token, good_zip(tmp_path / "g.zip")).json()["id"]
    partial = raw_zip(tmp_path / "p.zip", {"output.txt": lines(39), README_NAME: README})
    bad = upload(api, token, partial).json()["id"]
    score_all(ch)
    client, _ = login_client(app, "alice")
    seen = "".join([
        api.get(f"/api/v1/submissions/{good}", headers=bearer(token)).text,
        api.get(f"/api/v1/submissions/{bad}", headers=bearer(token)).text,
        api.get("/api/v1/submissions", headers=bearer(token)).text,
        api.get("/api/v1/phases/dev/leaderboard").text, api.get("/api/v1/challenge").text,
        client.get("/phases/dev").text, client.get(f"/submissions/{bad}").text, client.get(f"/submissions/{good}").text,
        client.get("/phases/dev/names.txt").text, client.get("/phases/test/names.txt").text])
    assert "no score for 1 of the 40 expected images" in seen
    for _, label in phase_labels("dev", 40, 1) + phase_labels("test", 30, 2):
        assert f"{label}" not in seen and f"{label:.1f}" not in seen
    assert "Dis/dev000.bmp" in seen          # names are public (participants have the images); labels are not
