"""Helpers of the challenge tests: configs, label files, submission zips, users, live servers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import numpy as np

from iqarena.challenge.auth import create_token, create_user
from iqarena.submission import Readme, pack_submission

FMT = "%Y-%m-%dT%H:%M:%SZ"
README = Readme(0.25, gpu=True, extra_data=False, description="test method").as_text()


def phase_labels(prefix: str, n: int, seed: int) -> list[tuple[str, float]]:
    rng = np.random.default_rng(seed)
    return [(f"Dis/{prefix}{i:03d}.bmp", round(float(s), 4)) for i, s in enumerate(rng.uniform(900, 1700, n))]


def write_config(folder: Path, *, test_end: datetime | None = None, limits: str = "", dev_extra: str = "",
                 n_dev: int = 40, n_test: int = 30, title: str = "Test <b>challenge</b>") -> Path:
    """A two-phase config: dev (open, shown), test (open, hidden until ``test_end``)."""
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    for name, n, seed in (("dev", n_dev, 1), ("test", n_test, 2)):
        (folder / f"{name}_labels.txt").write_text("".join(f"{d},{s}\n" for d, s in phase_labels(name, n, seed)))
    test_end = test_end or now + timedelta(days=2)
    limits = limits or "daily = 3\ntotal = 5\nfailed_daily = 4\nlease_s = 2\nscore_timeout_s = 20\nmax_attempts = 3"
    path = folder / "challenge.toml"
    path.write_text(f'''title = "{title}"
description = "A challenge for the tests."

[leaderboard]
columns = ["main", "srcc", "plcc", "runtime", "device", "extra_data"]
digits = 3

[limits]
{limits}

[[phases]]
name = "dev"
title = "Development"
start = {(now - timedelta(days=1)).strftime(FMT)}
end = {(now + timedelta(days=10)).strftime(FMT)}
labels = "dev_labels.txt"
{dev_extra}

[[phases]]
name = "test"
title = "Test"
start = {(now - timedelta(days=1)).strftime(FMT)}
end = {test_end.strftime(FMT)}
labels = "test_labels.txt"
hidden = true
''')
    return path


def predictions(phase: str, n: int, seed: int, noise: float) -> dict[str, float]:
    """Scores that follow the phase's labels with ``noise`` (names as bare file names)."""
    rng = np.random.default_rng(100 + seed)
    labels = phase_labels(phase, n, 1 if phase == "dev" else 2)
    return {d.split("/")[-1]: s + float(rng.normal(0, noise)) for d, s in labels}


def good_zip(path: Path, phase: str = "dev", n: int = 40, seed: int = 0, noise: float = 100.0) -> Path:
    return pack_submission(predictions(phase, n, seed, noise), Readme(0.25, True, False, "test method"), path,
                           overwrite=True)


def raw_zip(path: Path, members: dict[str, bytes], attrs: dict[str, int] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (attrs or {}).get(name, 0o100644 << 16)
            info.create_system = 3
            zf.writestr(info, data)
    return path


def user_with_token(ch, name: str, team: str | None = None, organiser: bool = False, invite: str | None = None):
    """(user id, API token, team invite) of a new user, optionally creating or joining a team."""
    with ch.Session.begin() as s:
        user = create_user(s, name, "password-" + name, organiser=organiser)
        if team is not None:
            invite = ch.create_team(s, user, team).invite
        elif invite is not None:
            ch.join_team(s, user, invite)
        token = create_token(s, user, "test")
        return user.id, token, invite


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """``python -m iqarena.challenge.server`` on a loopback port; stopped (with its workers) by ``stop``."""

    def __init__(self, root: Path, url: str | None, workers: int = 1, hold: float = 0.0, port: int | None = None):
        self.root, self.url, self.workers, self.hold = root, url, workers, hold
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def start(self, timeout: float = 60) -> "LiveServer":
        cmd = [sys.executable, "-m", "iqarena.challenge.server", str(self.root), "--port", str(self.port),
               "--workers", str(self.workers), "--hold", str(self.hold)]
        if self.url:
            cmd += ["--database", self.url]
        self.log = open(self.root / f"server-{self.port}-{time.monotonic_ns()}.log", "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {Path(self.log.name).read_text()[-2000:]}")
            try:
                if httpx.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("server did not start")

    def worker_pids(self) -> list[int]:
        """The server's worker processes (not their forked scoring children)."""
        if self.proc is None:
            return []
        return self._pgrep("-P", str(self.proc.pid))

    def _pgrep(self, *options: str) -> list[int]:
        out = subprocess.run(["pgrep", *options, "-f", f"iqarena.challenge.worker {self.root}"], capture_output=True,
                             text=True)
        return [int(p) for p in out.stdout.split()]

    def strays(self) -> list[int]:
        """Any worker or scoring process of this challenge still running."""
        return self._pgrep()

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, 9 if kill else 15)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.wait()
        # the workers are in the server's process group; make sure none is left
        for pid in self.strays():
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        self.proc = None
        self.log.close()


class ThreadServer:
    """The app under uvicorn in a thread of the test process (loopback): real HTTP, no extra interpreter."""

    def __init__(self, app):
        import uvicorn

        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    access_log=False))
        import threading

        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "ThreadServer":
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(20)
