"""A challenge's configuration: ``challenge.toml`` (title, phases with UTC times, label files, leaderboard, limits).

``iqarena challenge init DIR --config challenge.toml`` copies the file to ``DIR/challenge.toml`` and each
phase's label file (and optional data file) to ``DIR/phases/<name>/``, so a challenge folder holds
everything the server needs. The keys are listed in ``docs/challenge.md``.
"""

from __future__ import annotations

import re
import shutil
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path

from ..errors import InputError

CONFIG_FILE = "challenge.toml"
COLUMNS = ("main", "srcc", "plcc", "runtime", "device", "extra_data", "submitted", "n")
COLUMN_TITLES = {"main": "Main score (SRCC + PLCC)", "srcc": "SRCC", "plcc": "PLCC", "runtime": "Runtime / image [s]",
                 "device": "CPU / GPU", "extra_data": "Extra data", "submitted": "Submitted (UTC)", "n": "Images"}
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


def utc(value, where: str) -> datetime:
    """A TOML datetime or ISO text as an aware UTC datetime; a time without a zone is refused."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InputError(f"{where}: {value!r} is not a date and time. Write e.g. 2026-01-31T23:59:00Z.") from None
    if not isinstance(value, datetime):
        raise InputError(f"{where}: expected a date and time such as 2026-01-31T23:59:00Z, got {value!r}.")
    if value.tzinfo is None:
        raise InputError(f"{where}: {value.isoformat()} has no time zone. Write UTC times with a Z "
                         "(2026-01-31T23:59:00Z).")
    return value.astimezone(timezone.utc)


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Limits:
    """Submission limits (per team and phase) and the worker's bounds."""

    daily: int = 5                # counted submissions per UTC day (failed ones are not counted here)
    total: int = 100              # counted submissions over the phase
    failed_daily: int = 20        # failed submissions per UTC day, counted separately
    upload_bytes: int = 10 << 20  # request body cap, refused while streaming
    score_timeout_s: float = 120  # one scoring's wall-clock limit
    lease_s: float = 60           # a claimed job returns to the queue when its lease is not renewed
    max_attempts: int = 3         # claims of one job before it fails for good


@dataclass(frozen=True)
class Phase:
    name: str
    title: str
    start: datetime
    end: datetime
    labels: Path
    description: str = ""
    data: Path | None = None
    hidden: bool = False          # scores hidden from participants until the phase ends
    daily: int | None = None
    total: int | None = None

    def is_open(self, at: datetime | None = None) -> bool:
        at = at or now_utc()
        return self.start <= at < self.end

    def closed(self, at: datetime | None = None) -> bool:
        return (at or now_utc()) >= self.end

    def scores_visible(self, at: datetime | None = None) -> bool:
        """Whether participants may see this phase's scores now."""
        return not self.hidden or self.closed(at)

    @cached_property
    def expected(self) -> tuple[tuple[str, ...], "object"]:
        """(names, labels as a float64 array), read once per process."""
        import numpy as np

        from ..datasets.table import read_rows

        rows = read_rows(self.labels)
        return tuple(r.dist for r in rows), np.array([r.score for r in rows], dtype=np.float64)

    @property
    def names(self) -> tuple[str, ...]:
        return self.expected[0]


@dataclass(frozen=True)
class Config:
    title: str
    description: str
    phases: tuple[Phase, ...]
    columns: tuple[str, ...] = ("main", "srcc", "plcc", "runtime", "device", "extra_data")
    digits: int = 4
    limits: Limits = field(default_factory=Limits)
    root: Path | None = None

    def phase(self, name: str) -> Phase:
        for p in self.phases:
            if p.name == name:
                return p
        raise InputError(f"no phase {name!r}; phases: {', '.join(p.name for p in self.phases)}.")

    def daily_limit(self, phase: Phase) -> int:
        return self.limits.daily if phase.daily is None else phase.daily

    def total_limit(self, phase: Phase) -> int:
        return self.limits.total if phase.total is None else phase.total

    def current_phase(self, at: datetime | None = None) -> Phase | None:
        return next((p for p in self.phases if p.is_open(at)), None)


def _int(table: dict, key: str, default, where: str, kind=int):
    value = table.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise InputError(f"{where}: {key} must be a number >= 0, got {value!r}.")
    return kind(value)


def parse_config(data: dict, base: Path, source: str) -> Config:
    """A Config from parsed TOML; label and data paths relative to ``base``."""
    known = {"title", "description", "phases", "leaderboard", "limits"}
    unknown = set(data) - known
    if unknown:
        raise InputError(f"{source}: unknown keys {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}.")
    title = data.get("title")
    if not isinstance(title, str) or not title.strip():
        raise InputError(f"{source}: give the challenge a title (title = \"...\").")
    lim = data.get("limits", {})
    d = Limits()
    limits = Limits(daily=_int(lim, "daily", d.daily, source), total=_int(lim, "total", d.total, source),
                    failed_daily=_int(lim, "failed_daily", d.failed_daily, source),
                    upload_bytes=_int(lim, "upload_bytes", d.upload_bytes, source),
                    score_timeout_s=_int(lim, "score_timeout_s", d.score_timeout_s, source, float),
                    lease_s=_int(lim, "lease_s", d.lease_s, source, float),
                    max_attempts=max(1, _int(lim, "max_attempts", d.max_attempts, source)))
    board = data.get("leaderboard", {})
    columns = tuple(board.get("columns", Config.columns))
    bad = [c for c in columns if c not in COLUMNS]
    if bad or "main" not in columns:
        raise InputError(f"{source}: leaderboard columns {bad or columns} are not all known or lack 'main'; "
                         f"choose from {', '.join(COLUMNS)} (main is required).")
    digits = _int(board, "digits", 4, source)
    phases_raw = data.get("phases")
    if not isinstance(phases_raw, list) or not phases_raw:
        raise InputError(f"{source}: no [[phases]]. Give at least one phase with name, start, end and labels.")
    phases = []
    for i, p in enumerate(phases_raw, start=1):
        where = f"{source}, phase {i}"
        name = p.get("name", "")
        if not isinstance(name, str) or not NAME.match(name):
            raise InputError(f"{where}: name {name!r} must be 1-32 lower-case letters, digits, '-' or '_'.")
        for key in ("start", "end", "labels"):
            if key not in p:
                raise InputError(f"{where} ({name}): no {key}.")
        start, end = utc(p["start"], f"{where} start"), utc(p["end"], f"{where} end")
        if end <= start:
            raise InputError(f"{where} ({name}): end {end.isoformat()} is not after start {start.isoformat()}.")
        labels = (base / p["labels"]).resolve()
        data_file = (base / p["data"]).resolve() if p.get("data") else None
        phases.append(Phase(name=name, title=str(p.get("title", name)), start=start, end=end, labels=labels,
                            description=str(p.get("description", "")), data=data_file,
                            hidden=bool(p.get("hidden", False)), daily=_int(p, "daily", None, where),
                            total=_int(p, "total", None, where)))
    if len({p.name for p in phases}) < len(phases):
        raise InputError(f"{source}: two phases share a name; give each its own.")
    return Config(title=title.strip(), description=str(data.get("description", "")), phases=tuple(phases),
                  columns=columns, digits=digits, limits=limits)


def read_config_file(path: str | Path) -> Config:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"challenge config {path} not found. Check the path.")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not valid TOML ({exc}).") from None
    return parse_config(data, path.parent, str(path))


def load_config(root: str | Path) -> Config:
    """The configuration of an initialised challenge folder; phase files come from ``root/phases/<name>/``."""
    root = Path(root)
    config = read_config_file(root / CONFIG_FILE)
    phases = []
    for p in config.phases:
        folder = root / "phases" / p.name
        data = next(iter(sorted(folder.glob("data.*"))), None) if p.data is not None else None
        phases.append(Phase(**{**{k: getattr(p, k) for k in ("name", "title", "start", "end", "description",
                                                                  "hidden", "daily", "total")},
                               "labels": folder / "labels.txt", "data": data}))
    return Config(title=config.title, description=config.description, phases=tuple(phases), columns=config.columns,
                  digits=config.digits, limits=config.limits, root=root)


def install_config(config_path: str | Path, root: str | Path) -> Config:
    """Copy the config and each phase's label (and data) file into ``root``; checks every label file reads."""
    config = read_config_file(config_path)
    root = Path(root)
    for p in config.phases:
        if not p.labels.is_file():
            raise InputError(f"phase {p.name}: label file {p.labels} not found. Check the path in {config_path}.")
        names = p.names  # reads and checks the labels
        if len(names) < 5:
            raise InputError(f"phase {p.name}: {p.labels} holds {len(names)} images; the poly3 fit needs at least 5.")
        if p.data is not None and not p.data.is_file():
            raise InputError(f"phase {p.name}: data file {p.data} not found. Check the path in {config_path}.")
    root.mkdir(parents=True, exist_ok=True)
    for p in config.phases:
        folder = root / "phases" / p.name
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p.labels, folder / "labels.txt")
        for old in folder.glob("data.*"):
            old.unlink()
        if p.data is not None:
            shutil.copyfile(p.data, folder / f"data{''.join(p.data.suffixes[-2:]) or '.bin'}")
    shutil.copyfile(config_path, root / CONFIG_FILE)
    return load_config(root)
