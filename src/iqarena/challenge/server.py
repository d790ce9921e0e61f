"""``serve``: the web application under uvicorn, with scoring workers in their own processes, restarted
when they die and stopped when the server stops."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

log = logging.getLogger("iqarena.challenge")


class WorkerPool:
    """``count`` worker processes (``python -m iqarena.challenge.worker``), restarted when one exits."""

    def __init__(self, root: Path, url: str | None, count: int, hold: float = 0.0):
        self.cmd = [sys.executable, "-m", "iqarena.challenge.worker", str(root), "--parent", str(os.getpid())]
        if url:
            self.cmd += ["--database", url]
        if hold:
            self.cmd += ["--hold", str(hold)]
        self.count = count
        self.procs: list[subprocess.Popen] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def start(self) -> "WorkerPool":
        self.procs = [self._spawn() for _ in range(self.count)]
        self.thread.start()
        return self

    def _spawn(self) -> subprocess.Popen:
        return subprocess.Popen(self.cmd, preexec_fn=_die_with_parent if sys.platform == "linux" else None)

    def _watch(self) -> None:
        while not self.stop.wait(1.0):
            for i, proc in enumerate(self.procs):
                if proc.poll() is not None and not self.stop.is_set():
                    log.warning("worker %s exited with %s; starting another", proc.pid, proc.returncode)
                    self.procs[i] = self._spawn()

    def close(self) -> None:
        self.stop.set()
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the server process dies, however it dies (Linux)."""
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def serve(root: str | Path, url: str | None = None, host: str = "127.0.0.1", port: int = 8000, workers: int = 2,
          hold: float = 0.0, secure_cookies: bool = False) -> None:
    import uvicorn

    from .app import create_app
    from .service import Challenge

    root = Path(root)
    challenge = Challenge.open(root, url)  # migrates before any worker starts
    app = create_app(root, url, challenge=challenge, secure_cookies=secure_cookies)
    pool = WorkerPool(root, url, workers, hold).start() if workers > 0 else None
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, timeout_graceful_shutdown=5,
                    timeout_keep_alive=30)
    finally:
        if pool is not None:
            pool.close()


def main(argv=None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="iqarena challenge server")
    parser.add_argument("root")
    parser.add_argument("--database", default=None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--hold", type=float, default=0.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    serve(args.root, args.database, args.host, args.port, args.workers, args.hold)


if __name__ == "__main__":
    main()
