"""Training data: the rows of any ``iqarena.datasets`` reader as tensors, split by content, with the same
random crop and flip for a distorted image and its reference.

Randomness comes from (seed, epoch, index), not from a generator that advances with every draw, so a
run that resumes mid-epoch, or that loads with several worker processes, sees exactly the crops and
the order an uninterrupted run sees.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset
from torch.utils.data import Sampler

from ..datasets import Dataset, load_dataset, split_by_reference
from ..errors import InputError
from ..io import read_image
from .config import DataConfig


def load_splits(cfg: DataConfig) -> tuple[Dataset, Dataset | None]:
    """(train, val) of the configured dataset: the official split where asked for, a k-fold or a seeded
    split by reference content otherwise (no content in both parts); ``all``: every image trains and
    there is no validation (val is None: a final model after the settings were chosen by validation)."""
    if not cfg.root and cfg.dataset != "csv":
        raise InputError(f"data.root is empty: give the folder of the {cfg.dataset} release.", option="root")
    options = dict(cfg.reader_options)
    labels = cfg.labels or None
    root = cfg.root or None
    if cfg.split == "official":
        train = load_dataset(cfg.dataset, root, split="train", labels=labels, **options)
        val = load_dataset(cfg.dataset, root, split="val", labels=labels, **options)
    elif cfg.split == "reference":
        ds = load_dataset(cfg.dataset, root, labels=labels, **options)
        if cfg.fold >= 0:
            train, val = fold_split(ds, cfg.fold, cfg.folds, cfg.split_seed)
        else:
            if len(cfg.fractions) != 2:
                raise InputError(f"data.fractions must be [train, val], got {cfg.fractions}.")
            parts = split_by_reference(ds, tuple(cfg.fractions), cfg.split_seed, ("train", "val"))
            train, val = parts["train"], parts["val"]
    elif cfg.split == "all":
        train, val = load_dataset(cfg.dataset, root, labels=labels, **options), None
    else:
        raise InputError(f"data.split must be 'official', 'reference' or 'all', got {cfg.split!r}.")
    for name, part in (("training", train), ("validation", val)):
        if part is None:
            continue
        if len(part) == 0:
            raise InputError(f"the {name} split of {cfg.dataset} has no images; check data.fractions / data.fold.")
        bad = [r.dist for r in part.rows if not np.isfinite(r.score)]
        if bad:
            raise InputError(f"{len(bad)} labels of the {name} split are not finite (first: {bad[0]}).")
    return train, val


def fold_split(ds: Dataset, fold: int, folds: int, seed: int = 0) -> tuple[Dataset, Dataset]:
    """Fold ``fold`` of a seeded ``folds``-fold split by content: (the other folds, this fold)."""
    if not 0 <= fold < folds:
        raise InputError(f"data.fold must be in 0..{folds - 1}, got {fold}.")
    contents = sorted({r.content for r in ds.rows})
    order = np.random.default_rng(seed).permutation(len(contents))
    mine = {contents[i] for i in order[fold::folds]}
    val = [i for i, r in enumerate(ds.rows) if r.content in mine]
    train = [i for i, r in enumerate(ds.rows) if r.content not in mine]
    return ds.subset(train, split=f"train-fold{fold}"), ds.subset(val, split=f"val-fold{fold}")


def _rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, epoch, index])


class PairData(TorchDataset):
    """Items ``(dist, ref, score, index)``: ``dist``/``ref`` are (K, C, h, w) stacks of K crops (K =
    ``crops``; ``ref`` is an empty tensor for no-reference data). ``crop`` 0 keeps whole images."""

    def __init__(self, ds: Dataset, *, crop: int = 0, crops: int = 1, flip: bool = False, seed: int = 0,
                 cache: bool = False, need_ref: bool = True):
        self.ds, self.crop, self.crops, self.flip, self.seed = ds, crop, crops, flip, seed
        self.need_ref = need_ref and ds.has_reference
        if need_ref and not ds.has_reference:
            raise InputError(f"{ds.name} has no reference images; a full-reference model cannot train on it.")
        self.epoch = 0
        self._cache: dict[str, torch.Tensor] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.ds)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _read(self, rel: str) -> torch.Tensor:
        if self._cache is None:
            return read_image(self.ds.path(rel))
        if rel not in self._cache:
            self._cache[rel] = (read_image(self.ds.path(rel)) * 255).round().to(torch.uint8)
        return self._cache[rel].float() / 255

    def __getitem__(self, i: int):
        row = self.ds.rows[i]
        d = self._read(row.dist)
        r = self._read(row.ref) if self.need_ref else None
        if r is not None and d.shape[1:] != r.shape[1:]:
            raise InputError(f"{row.dist} and its reference {row.ref} differ in size.")
        if r is not None and d.shape[0] != r.shape[0]:
            d, r = d.expand(3, -1, -1), r.expand(3, -1, -1)
        if d.shape[0] == 1:
            d = d.expand(3, -1, -1)
            r = r.expand(3, -1, -1) if r is not None else None
        h, w = d.shape[1:]
        rng = _rng(self.seed, self.epoch, i)
        ds_, rs_ = [], []
        for _ in range(self.crops):
            if self.crop:
                if self.crop > h or self.crop > w:
                    raise InputError(f"data.crop {self.crop} is larger than {row.dist} ({w}x{h}); use a smaller "
                                     "crop, or 0 for whole images.", option="crop")
                y, x = int(rng.integers(0, h - self.crop + 1)), int(rng.integers(0, w - self.crop + 1))
                dc = d[:, y:y + self.crop, x:x + self.crop]
                rc = r[:, y:y + self.crop, x:x + self.crop] if r is not None else None
            else:
                dc, rc = d, r
            if self.flip and rng.random() < 0.5:
                dc = dc.flip(-1)
                rc = rc.flip(-1) if rc is not None else None
            ds_.append(dc)
            if rc is not None:
                rs_.append(rc)
        ref = torch.stack(rs_) if rs_ else torch.empty(0)
        return torch.stack(ds_), ref, torch.tensor(row.score, dtype=torch.float32), i


def collate(items):
    """Stack items into (dist, ref | None, score, index) with the crops of an image consecutive."""
    dist = torch.cat([it[0] for it in items])
    ref = torch.cat([it[1] for it in items]) if items[0][1].numel() else None
    k = items[0][0].shape[0]
    score = torch.stack([it[2] for it in items]).repeat_interleave(k)
    index = torch.tensor([it[3] for it in items]).repeat_interleave(k)
    return dist, ref, score, index


class EpochSampler(Sampler[int]):
    """A seeded permutation per epoch, cut into ``num_replicas`` interleaved shards (DDP), starting at
    ``start`` (the number of this shard's items already consumed: a mid-epoch resume). ``repeats[i]``: how
    often item ``i`` is drawn per epoch (oversampling; default once); ``groups`` and ``per_group``: batches made
    of runs of that many items of one group (reference), for pairwise losses."""

    def __init__(self, n: int, seed: int, rank: int = 0, num_replicas: int = 1, repeats=None, groups=None,
                 per_group: int = 0):
        self.n, self.seed, self.rank, self.num_replicas = n, seed, rank, num_replicas
        self.items = np.arange(n) if repeats is None else np.repeat(np.arange(n), np.asarray(repeats, dtype=np.int64))
        self.groups = None if groups is None or not per_group else np.unique(np.asarray(groups), return_inverse=True)[1]
        self.per_group = per_group
        self.epoch, self.start = 0, 0

    def _grouped(self, perm: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Runs of ``per_group`` items of one group (in the permuted order), the runs shuffled: a batch holds
        whole runs, so a pairwise loss sees pairs of the same reference in every batch."""
        keys = self.groups[perm]
        order = perm[np.argsort(keys, kind="stable")]
        keys = self.groups[order]
        runs = []
        for g_items in np.split(order, np.flatnonzero(np.diff(keys)) + 1):
            runs += [g_items[i:i + self.per_group] for i in range(0, len(g_items), self.per_group)]
        return np.concatenate([runs[i] for i in rng.permutation(len(runs))])

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def order(self) -> list[int]:
        rng = np.random.default_rng([self.seed, self.epoch, 7919])
        perm = self.items[rng.permutation(len(self.items))]
        perm = (self._grouped(perm, rng) if self.groups is not None else perm).tolist()
        usable = len(perm) - len(perm) % self.num_replicas if len(perm) >= self.num_replicas else len(perm)
        return perm[:usable][self.rank::self.num_replicas]

    def __iter__(self):
        return iter(self.order()[self.start:])

    def __len__(self) -> int:
        return max(0, len(self.order()) - self.start)


class FeatureData(TorchDataset):
    """Cached features as training items: ``views[v, i]`` is view ``v`` (0: the image, 1: flipped) of
    image ``i``; each epoch draws a view per item from (seed, epoch, index), as PairData draws its flips."""

    def __init__(self, views: torch.Tensor, scores: torch.Tensor, seed: int = 0):
        self.views, self.scores, self.seed, self.epoch = views, scores, seed, 0

    def __len__(self) -> int:
        return self.views.shape[1]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, i: int):
        v = int(_rng(self.seed, self.epoch, i).integers(0, self.views.shape[0]))
        return self.views[v, i][None], torch.empty(0), self.scores[i], i
