"""The score store: every score iqarena computed, shared by every report, split and run.

A store is a folder of Parquet parts with the columns

    dataset, dist, metric, options, fingerprint, score

(``dataset``: which image set, ``dist``: the distorted image's path relative to it, ``options``: the
metric's options as canonical JSON, ``fingerprint``: the hash of the metric's code, parameter files and
options). A score is reused only under the same fingerprint, so stale scores are never read; they
stay until ``drop`` or ``compact(drop=...)`` removes them.

Writers never touch each other's files: each ``append`` writes a new part to a temporary name and
renames it into place (atomic on one file system), so several processes may write at once and a
process killed while writing leaves no partial part behind. Readers read only the columns and rows
they need. ``compact`` merges many small parts into one under a file lock, streaming batch by batch,
so memory stays flat however large the store grows.
"""

from __future__ import annotations

import fcntl
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds
import pyarrow.parquet as pq

from ..errors import InputError
from ..io import atomic_output

SCHEMA = pa.schema([("dataset", pa.string()), ("dist", pa.string()), ("metric", pa.string()),
                    ("options", pa.string()), ("fingerprint", pa.string()), ("score", pa.float64())])
ENV_STORE = "IQARENA_STORE"
_TMP_PREFIX = ".tmp-"  # io.atomic_output's temporary files
_STALE_TMP_SECONDS = 3600


def _part_name() -> str:
    """A new part's name: sorts by creation time, unique across processes."""
    return f"part-{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"


def default_root() -> Path:
    """$IQARENA_STORE, else the ``scores`` folder of iqarena's cache root ($IQARENA_HOME ...)."""
    from ..weights import home

    return Path(os.environ[ENV_STORE]).expanduser() if os.environ.get(ENV_STORE) else home() / "scores"


@dataclass(frozen=True)
class Key:
    """The scores of one metric (with its options) on one dataset, as they are today."""

    dataset: str
    metric: str
    fingerprint: str
    options: str = "{}"


@dataclass(frozen=True)
class ScoreMatrix:
    """Scores of several metrics on the same images: ``values[i, j]`` is image ``dists[i]`` under
    metric ``metrics[j]`` (NaN where not scored)."""

    dists: tuple[str, ...]
    metrics: tuple[str, ...]
    values: np.ndarray

    def as_dict(self) -> dict:
        return {"dists": list(self.dists), "metrics": list(self.metrics), "values": self.values.tolist()}


class ScoreStore:
    """A folder of score parts (see the module docstring); ``root`` default :func:`default_root`."""

    def __init__(self, root: str | Path | None = None, *, max_parts: int = 256):
        self.root = Path(root).expanduser() if root is not None else default_root()
        if self.root.exists() and not self.root.is_dir():
            raise InputError(f"score store {self.root} is a file; give a folder.", option="store")
        self.max_parts = max_parts

    # ------------------------------------------------------------ writing

    def append(self, key: Key, dists: Sequence[str], scores: Sequence[float]) -> Path | None:
        """Store ``scores`` of ``dists`` under ``key`` as one new part; returns its path (None if empty)."""
        return self.append_many([(key, dists, scores)])

    def append_many(self, groups: Iterable[tuple[Key, Sequence[str], Sequence[float]]]) -> Path | None:
        """Several keys' scores as one part (one file per job, not per metric)."""
        cols: dict[str, list] = {n: [] for n in SCHEMA.names}
        for key, dists, scores in groups:
            if len(dists) != len(scores):
                raise InputError(f"{len(dists)} images but {len(scores)} scores for {key.metric}.")
            n = len(dists)
            cols["dataset"] += [key.dataset] * n
            cols["dist"] += list(map(str, dists))
            cols["metric"] += [key.metric] * n
            cols["options"] += [key.options] * n
            cols["fingerprint"] += [key.fingerprint] * n
            cols["score"] += [float(s) for s in scores]
        if not cols["dist"]:
            return None
        path = self._write(pa.table(cols, schema=SCHEMA))
        if len(self.parts()) > self.max_parts:
            self.compact(wait=False)
        return path

    def _write(self, table: pa.Table) -> Path:
        path = self.root / _part_name()
        with atomic_output(path, durable=True) as tmp:
            pq.write_table(table, tmp, compression="zstd")
        return path

    # ------------------------------------------------------------ reading

    def parts(self) -> list[Path]:
        """The finished parts, oldest first (temporary files of running or killed writers are not parts)."""
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.glob("part-*.parquet"))

    def _read(self, columns: list[str], where: pc.Expression | None) -> pa.Table:
        """The rows matching ``where``, only ``columns``; retried if a compaction removed a part meanwhile."""
        for attempt in range(5):
            parts = self.parts()
            if not parts:
                return SCHEMA.empty_table().select(columns)
            try:
                return pds.dataset(parts, schema=SCHEMA, format="parquet").to_table(columns=columns, filter=where)
            except OSError as exc:  # FileNotFoundError, or Arrow's IOError for a vanished part
                if attempt == 4 or all(p.exists() for p in parts):
                    raise InputError(f"score store {self.root}: cannot read its parts ({exc}). Move damaged "
                                     "part-*.parquet files away.") from None
        raise AssertionError("unreachable")

    @staticmethod
    def _where(key: Key) -> pc.Expression:
        return ((pc.field("dataset") == key.dataset) & (pc.field("metric") == key.metric)
                & (pc.field("fingerprint") == key.fingerprint) & (pc.field("options") == key.options))

    def done(self, key: Key) -> set[str]:
        """The images that have a score under ``key``."""
        return set(self._read(["dist"], self._where(key)).column("dist").to_pylist())

    def done_names(self, key: Key) -> pa.Array:
        """The images that have a score under ``key``, as one Arrow string array (compact: for millions of
        names, a few bytes each instead of a Python string and a set slot)."""
        col = self._read(["dist"], self._where(key)).column("dist")
        return col.combine_chunks() if col.num_chunks else pa.array([], pa.string())

    def lookup(self, key: Key, dists: Sequence[str]) -> np.ndarray:
        """Scores of ``dists`` under ``key``, in that order; NaN where an image has none."""
        t = self._read(["dist", "score"], self._where(key))
        idx = pc.index_in(pa.array(list(map(str, dists)), pa.string()), value_set=t.column("dist"))
        scores = t.column("score").to_numpy()
        found = idx.is_valid().to_numpy(zero_copy_only=False)
        out = np.full(len(dists), np.nan)
        out[found] = scores[idx.drop_null().to_numpy()]
        return out

    def matrix(self, keys: Sequence[Key], dists: Sequence[str] | None = None) -> ScoreMatrix:
        """Several metrics' scores on one dataset as an image x metric matrix (for ensembles). ``dists``
        defaults to every image scored under the first key."""
        if not keys:
            raise InputError("a score matrix needs at least one metric.")
        if dists is None:
            dists = sorted(self.done(keys[0]))
        values = np.column_stack([self.lookup(k, dists) for k in keys]) if dists else np.empty((0, len(keys)))
        return ScoreMatrix(tuple(dists), tuple(k.metric for k in keys), values)

    def __len__(self) -> int:
        return sum(pq.ParquetFile(p).metadata.num_rows for p in self.parts())

    # ------------------------------------------------------------ maintenance

    def compact(self, *, drop: pc.Expression | None = None, wait: bool = True) -> bool:
        """Merge every part into one, leaving out rows matching ``drop``; False if another process holds
        the lock and ``wait`` is off. Streams batch by batch; a crash at any point loses no row (the new
        part is in place before the old ones are removed; duplicates are harmless)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                return False
            self._remove_stale_tmp()
            parts = self.parts()
            if len(parts) <= 1 and drop is None:
                return True
            scanner = pds.dataset(parts, schema=SCHEMA, format="parquet").scanner(
                filter=None if drop is None else ~drop, batch_size=1 << 16)
            with atomic_output(self.root / _part_name(), durable=True) as tmp:
                with pq.ParquetWriter(tmp, SCHEMA, compression="zstd") as out:
                    for batch in scanner.to_batches():
                        out.write_batch(batch)
            for p in parts:
                p.unlink(missing_ok=True)
        return True

    def drop(self, *, dataset: str | None = None, metric: str | None = None) -> None:
        """Remove the rows of a dataset and/or a metric (all fingerprints)."""
        conds = [pc.field(c) == v for c, v in (("dataset", dataset), ("metric", metric)) if v is not None]
        if not conds:
            raise InputError("drop needs a dataset or a metric; to empty a store, delete its folder.")
        expr = conds[0]
        for c in conds[1:]:
            expr = expr & c
        self.compact(drop=expr)

    def _remove_stale_tmp(self) -> None:
        now = time.time()
        for p in self.root.glob(_TMP_PREFIX + "*"):
            try:
                if now - p.stat().st_mtime > _STALE_TMP_SECONDS:
                    p.unlink()
            except FileNotFoundError:
                pass
