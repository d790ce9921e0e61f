"""Scoring many image pairs with many metrics: loading, batching by image size, progress."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable, Iterator

import torch

from .errors import InputError
from .io import Pair, read_image
from .metrics import create_metric, get_info


@dataclass(frozen=True)
class ScoreRow:
    dist: str
    ref: str
    metric: str
    score: float

    def as_dict(self) -> dict:
        return {"dist": self.dist, "ref": self.ref, "metric": self.metric, "score": self.score}


def _load(pair: Pair, need_ref: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    d = read_image(pair.dist)
    if not need_ref:
        return d, None
    if pair.ref is None:
        raise InputError(f"{pair.dist}: full-reference metrics need a reference; give --ref or a 'ref' column.")
    r = read_image(pair.ref)
    if d.shape[1:] != r.shape[1:]:
        raise InputError(f"size mismatch: {pair.dist} is {d.shape[2]}x{d.shape[1]}, its reference {pair.ref} is "
                       f"{r.shape[2]}x{r.shape[1]}. Full-reference metrics need equal sizes: resize or crop first.")
    if d.shape[0] != r.shape[0]:  # grey against colour: promote the grey one
        d, r = (d.expand(3, -1, -1), r) if d.shape[0] == 1 else (d, r.expand(3, -1, -1))
    return d, r


def _batches(pairs: list[Pair], need_ref: bool, batch_size: int) -> Iterator[tuple[list[Pair], torch.Tensor, torch.Tensor | None]]:
    """Consecutive pairs of equal image shape, stacked into batches of at most ``batch_size``."""
    group: list[tuple[Pair, torch.Tensor, torch.Tensor | None]] = []

    def flush():
        ps = [g[0] for g in group]
        d = torch.stack([g[1] for g in group])
        r = torch.stack([g[2] for g in group]) if need_ref else None
        return ps, d, r

    for p in pairs:
        d, r = _load(p, need_ref)
        if group and (len(group) >= batch_size or group[0][1].shape != d.shape):
            yield flush()
            group = []
        group.append((p, d, r))
    if group:
        yield flush()


def score_pairs(pairs: list[Pair], metrics: Iterable[str], device: str = "cpu", batch_size: int = 8,
                progress: bool = False) -> list[ScoreRow]:
    """Score every pair with every named metric. Returns one row per (pair, metric)."""
    names = list(metrics)
    infos = [get_info(n) for n in names]
    if any(i.needs_ref for i in infos):
        missing = [p for p in pairs if p.ref is None]
        if missing:
            fr = ", ".join(i.name for i in infos if i.needs_ref)
            raise InputError(f"full-reference metrics ({fr}) need a reference for every image, and {missing[0].dist} "
                           "has none. Give --ref, or choose no-reference metrics.")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda asked for, but torch sees no CUDA device. Use --device cpu.")
    modules = {n: create_metric(n, device=device) for n in names}
    rows: list[ScoreRow] = []
    need_ref = any(i.needs_ref for i in infos)
    with progress_bar(progress, len(pairs)) as advance:
        for batch_pairs, d, r in _batches(pairs, need_ref, batch_size):
            d = d.to(device)
            r = r.to(device) if r is not None else None
            with torch.no_grad():
                for info in infos:
                    s = modules[info.name](d, r) if info.needs_ref else modules[info.name](d)
                    for p, v in zip(batch_pairs, s.double().cpu().tolist()):
                        rows.append(ScoreRow(str(p.dist), str(p.ref) if p.ref else "", info.name, v))
            advance(len(batch_pairs))
    return rows


@contextmanager
def progress_bar(enabled: bool, total: int):
    """Yields a function advancing a rich progress bar (or doing nothing when disabled)."""
    if not enabled:
        yield lambda n: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  transient=True) as bar:
        task = bar.add_task("scoring", total=total)
        yield lambda n: bar.advance(task, n)
