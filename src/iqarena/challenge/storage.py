"""Uploaded files: streamed to a temporary file under a byte cap, flushed to disk, stored by content hash."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

UPLOADS = "uploads"


class TooLarge(Exception):
    """The body passed the cap while it was streaming in."""


def stored_path(root: str | Path, sha256: str) -> Path:
    return Path(root) / UPLOADS / sha256[:2] / f"{sha256}.zip"


class Incoming:
    """A file being received: ``write`` chunks (TooLarge past ``cap``), then ``commit`` to its stored place."""

    def __init__(self, root: str | Path, cap: int):
        self.root, self.cap = Path(root), cap
        tmp = self.root / UPLOADS / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=tmp, suffix=".part")
        self.fh = os.fdopen(fd, "wb")
        self.path = Path(name)
        self.size = 0
        self.hash = hashlib.sha256()

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.cap:
            raise TooLarge(self.cap)
        self.hash.update(chunk)
        self.fh.write(chunk)

    def commit(self) -> tuple[str, Path]:
        """fsync, move to ``uploads/<sha[:2]>/<sha>.zip`` and fsync the folder: durable before the row is."""
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        sha = self.hash.hexdigest()
        dest = stored_path(self.root, sha)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.path, dest)
        fd = os.open(dest.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return sha, dest

    def discard(self) -> None:
        if not self.fh.closed:
            self.fh.close()
        self.path.unlink(missing_ok=True)
