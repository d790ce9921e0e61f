"""The pages in a real browser: Playwright driving Debian's chromium against the app on a loopback port.

Register, create and join a team, upload (good and bad), watch the status, read the leaderboards (a hidden test
phase), the organiser's rescore, API tokens. Screenshots of the main pages go to a temporary folder, or to docs/
with IQARENA_SCREENSHOTS=1 (how the ones in docs/challenge-*.png were made)."""

from __future__ import annotations

import os
import re
import shutil
import threading
from pathlib import Path

import pytest
from .challenge_util import ThreadServer, good_zip, raw_zip, user_with_token

from iqarena.challenge.app import create_app
from iqarena.challenge.worker import Worker

CHROMIUM = os.environ.get("IQARENA_TEST_CHROMIUM") or shutil.which("chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
DOCS = Path(__file__).resolve().parents[2] / "docs"

pytestmark = pytest.mark.skipif(not CHROMIUM or not Path(CHROMIUM).exists(),
                                reason="no chromium (set IQARENA_TEST_CHROMIUM or install Debian's chromium)")


@pytest.fixture
def site(make_challenge):
    """(challenge, base URL) with a scoring worker thread; everything stops at the end."""
    pytest.importorskip("playwright")
    ch = make_challenge(None, title="NTIRE-style perceptual IQA challenge")
    user_with_token(ch, "organiser", organiser=True)
    stop = threading.Event()
    worker = Worker(ch.root, None, config=ch.config, engine=ch.engine, poll=0.2)
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    with ThreadServer(create_app(ch.root, None, challenge=ch)) as server:
        yield ch, server.base
    stop.set()
    thread.join(30)


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def test_a_whole_challenge_in_the_browser(site, browser, tmp_path):
    from playwright.sync_api import expect

    ch, base = site
    shots = DOCS if os.environ.get("IQARENA_SCREENSHOTS") else tmp_path

    def shot(page, name):
        page.screenshot(path=str(shots / f"challenge-{name}.png"), full_page=True)

    def register(ctx, name):
        page = ctx.new_page()
        page.goto(base + "/register")
        page.fill("input[name=name]", name)
        page.fill("input[name=password]", "password-" + name)
        page.fill("input[name=password2]", "password-" + name)
        page.click("button[type=submit]")
        expect(page).to_have_url(base + "/team")
        return page

    alice_ctx = browser.new_context(viewport={"width": 1200, "height": 800})
    page = alice_ctx.new_page()
    page.goto(base + "/")
    expect(page.locator("h1")).to_have_text("NTIRE-style perceptual IQA challenge")
    shot(page, "home")
    alice = register(alice_ctx, "alice")
    cookie = next(c for c in alice_ctx.cookies() if c["name"] == "iqarena_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert alice.evaluate("document.cookie") == ""            # not readable by scripts
    alice.fill("form[action='/team/create'] input[name=name]", "<b>Lab</b> α")
    alice.click("form[action='/team/create'] button")
    expect(alice.locator(".team-name")).to_have_text("<b>Lab</b> α")   # shown as text, not markup
    invite = alice.locator("code.invite").inner_text()
    shot(alice, "team")

    bob_ctx = browser.new_context()
    bob = register(bob_ctx, "bob")
    bob.fill("input[name=invite]", invite)
    bob.click("form[action='/team/join'] button")
    expect(bob.locator("body")).to_contain_text("Members: alice, bob")

    # a good upload: queued -> scored, on the leaderboard
    alice.goto(base + "/phases/dev")
    alice.set_input_files("input[type=file]", str(good_zip(tmp_path / "method.zip", noise=120.0)))
    alice.click("#upload button")
    expect(alice).to_have_url(re.compile(r"/submissions/\d+$"))
    good_id = int(alice.url.rsplit("/", 1)[1])
    expect(alice.locator("#status")).to_have_text("scored", timeout=30_000)
    main = float(alice.locator("#main").inner_text())
    assert 0.5 < main <= 2.0
    shot(alice, "submission")
    alice.goto(base + "/phases/dev")
    row = alice.locator("table.leaderboard tbody tr").first
    expect(row).to_contain_text("<b>Lab</b> α")
    expect(row).to_contain_text(f"{round(main, 3)}")
    shot(alice, "phase")

    # bad uploads: not a zip (refused at once), a zip without readme.txt (failed, with the reason)
    (tmp_path / "notes.txt").write_text("hello")
    alice.set_input_files("input[type=file]", str(tmp_path / "notes.txt"))
    alice.click("#upload button")
    expect(alice.locator(".error")).to_contain_text("not a zip file")
    alice.goto(base + "/phases/dev")
    alice.set_input_files("input[type=file]", str(raw_zip(tmp_path / "noreadme.zip", {"output.txt": b"a.bmp,1\n"})))
    alice.click("#upload button")
    expect(alice.locator("#status")).to_have_text("failed", timeout=30_000)
    expect(alice.locator("#reason")).to_contain_text("holds no readme.txt")
    shot(alice, "failed")

    # the hidden test phase: scored, but no score shown until it ends
    bob.goto(base + "/phases/test")
    expect(bob.locator(".notice")).to_contain_text("hidden until it ends")
    bob.set_input_files("input[type=file]", str(good_zip(tmp_path / "t.zip", phase="test", n=30)))
    bob.click("#upload button")
    expect(bob.locator("#status")).to_have_text("scored", timeout=30_000)
    expect(bob.locator("body")).to_contain_text("hidden until it closes")
    assert bob.locator("#main").count() == 0
    bob.goto(base + "/submissions")
    expect(bob.locator("table.subs tbody tr")).to_have_count(3)

    # API tokens: shown once
    alice.goto(base + "/tokens")
    alice.fill("input[name=label]", "laptop")
    alice.click("form[action='/tokens'] button")
    token = alice.locator("#new-token").inner_text()
    assert token.startswith("iqa_")
    alice.goto(base + "/tokens")
    assert token not in alice.content()
    shot(alice, "tokens")

    # the organiser: every submission, rescore one, exports
    org_ctx = browser.new_context(viewport={"width": 1300, "height": 800})
    org = org_ctx.new_page()
    org.goto(base + "/admin")
    expect(org).to_have_url(re.compile(r"/login"))
    org.fill("input[name=name]", "organiser")
    org.fill("input[name=password]", "password-organiser")
    org.click("button[type=submit]")
    expect(org).to_have_url(base + "/admin")
    expect(org.locator("table.subs tbody tr")).to_have_count(3)
    org.locator(f"#sub-{good_id} form[action$='/rescore'] button").click()
    expect(org.locator(f"#sub-{good_id} .status")).to_have_text(re.compile("queued|scoring|scored"))
    for _ in range(60):
        if org.locator(f"#sub-{good_id} .status").inner_text() == "scored":
            break
        org.wait_for_timeout(250)
        org.reload()
    expect(org.locator(f"#sub-{good_id} .status")).to_have_text("scored")
    expect(org.locator(f"#sub-{good_id}")).to_contain_text(f"{main:.4f}")   # same file, same score
    shot(org, "admin")
    with org.expect_download() as download:
        org.click("a[href='/admin/export/leaderboard/dev.csv']")
    text = Path(download.value.path()).read_text()
    assert text.splitlines()[0] == "rank,team,submission,main,srcc,plcc,runtime,device,extra_data"
    assert "<b>Lab</b> α" in text
    # a participant cannot reach the organiser pages
    alice.goto(base + "/admin")
    expect(alice.locator(".error")).to_have_text("organisers only.")
    for ctx in (alice_ctx, bob_ctx, org_ctx):
        ctx.close()
