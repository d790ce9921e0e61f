"""The training loop: a config -> a run folder with checkpoints, logs and a training curve.

``train(cfg)`` trains the registered model ``cfg.model.name`` on the configured dataset, validates
with the NTIRE main score (SRCC + PLCC after the cubic fit, ``iqarena.evaluate``) after every epoch
and writes, in ``cfg.train.out``:

- ``last.pt``: weights, optimiser, scheduler, RNG state, position in the epoch, config, best score;
  ``best.pt``: the weights with the best validation main score. Both are iqarena checkpoints: usable
  as metrics (``iqarena score -m run/best.pt``).
- ``steps.csv`` (step, epoch, loss, lr), ``epochs.csv`` (epoch, train loss, val srcc/plcc/main),
  ``curves.png``, ``config.json``.

A run killed at any moment resumes with ``resume=True`` from ``last.pt`` and continues exactly: the
batches, crops, dropout and optimiser steps after the resume equal those of an uninterrupted run.
Under ``torchrun`` (``WORLD_SIZE`` > 1) it trains with DistributedDataParallel (gloo on CPU, NCCL on
CUDA). ``data.batch_size`` is the global batch; predictions are gathered across processes before
the loss, so batch-level losses (PLCC, SRCC, pairwise) see the whole batch and the result equals a
single-process run on the same global batch.
"""

from __future__ import annotations

import csv
import inspect
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from ..errors import InputError
from ..evaluate.stats import evaluate
from ..execution import LocalExecutor, dataset_items, progress_bar, score_items
from ..io import atomic_output
from ..metrics import METRICS, MetricInfo, MetricSpec, fingerprint, get_info
from ..metrics.checkpoint import FORMAT, VERSION, read_checkpoint
from ..weights import load_state_dict
from .base import IQAModel
from .config import Config
from .data import EpochSampler, FeatureData, PairData, collate, load_splits
from .losses import build_loss

LAST, BEST = "last.pt", "best.pt"


@dataclass(frozen=True)
class TrainResult:
    out: Path
    epochs: int
    best_main: float
    best_epoch: int
    last_loss: float


# ---------------------------------------------------------------- building blocks

def build_model(cfg: Config) -> tuple[nn.Module, MetricInfo]:
    info = get_info(cfg.model.name)
    if not info.module:
        raise InputError(f"{info.name} is a function metric with nothing to train; choose a model "
                         f"({', '.join(n for n in METRICS.names() if METRICS[n].family == 'model')}).")
    return info.target(**cfg.model.options), info


def build_optimizer(model: nn.Module, cfg: Config) -> torch.optim.Optimizer:
    """AdamW or SGD; parameters under ``backbone.`` get ``lr * backbone_lr``; frozen ones none."""
    o = cfg.optim
    backbone = [p for n, p in model.named_parameters() if p.requires_grad and n.startswith("backbone.")]
    rest = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("backbone.")]
    groups = [g for g in ({"params": rest, "lr": o.lr, "name": "head"},
                          {"params": backbone, "lr": o.lr * o.backbone_lr, "name": "backbone"}) if g["params"]]
    if not groups:
        raise InputError(f"{cfg.model.name} has no trainable parameters with these options.")
    if o.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=o.lr, weight_decay=o.weight_decay)
    if o.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    raise InputError(f"optim.optimizer must be 'adamw' or 'sgd', got {o.optimizer!r}.")


def lr_factor(step: int, steps_per_epoch: int, cfg: Config) -> float:
    """The learning-rate multiplier at optimiser step ``step``: linear warm-up, then the schedule."""
    o, total = cfg.optim, max(1, cfg.train.epochs * steps_per_epoch)
    warm = int(round(o.warmup_epochs * steps_per_epoch))
    if step < warm:
        return (step + 1) / warm
    if o.schedule == "constant":
        return 1.0
    if o.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))
    if o.schedule == "step":
        return o.gamma ** (step // max(1, o.step_epochs * steps_per_epoch))
    raise InputError(f"optim.schedule must be cosine, step or constant, got {o.schedule!r}.")


def group_factors(optimizer: torch.optim.Optimizer, steps_per_epoch: int, cfg: Config) -> list:
    """One learning-rate multiplier per parameter group: the schedule, and for the backbone group nothing
    during the first ``optim.freeze_backbone_epochs`` (two-stage training)."""
    frozen_steps = int(round(cfg.optim.freeze_backbone_epochs * steps_per_epoch))

    def backbone(step: int) -> float:
        return 0.0 if step < frozen_steps else lr_factor(step, steps_per_epoch, cfg)

    return [backbone if g.get("name") == "backbone" else (lambda s: lr_factor(s, steps_per_epoch, cfg))
            for g in optimizer.param_groups]


def oversampling(scores, below: float, factor: int):
    """Draws per epoch of each training image: ``factor`` for labels under the ``below`` quantile, else 1
    (None when off)."""
    if not below:
        return None
    if not 0 < below < 1 or factor < 1:
        raise InputError(f"data.oversample_below must be a quantile in (0, 1) and data.oversample_factor >= 1, "
                         f"got {below} and {factor}.", option="oversample_below")
    scores = np.asarray(scores, dtype=np.float64)
    return np.where(scores < np.quantile(scores, below), factor, 1)


def start_from(model: nn.Module, source: str) -> None:
    """``train.init``: the tensors of a checkpoint (a run's best.pt or a partial file) whose names and shapes
    match the model; InputError when none does."""
    sd = load_state_dict(source)
    own = model.state_dict()
    taken = {k: v for k, v in sd.items() if k in own and own[k].shape == v.shape}
    if not taken:
        raise InputError(f"train.init: {source} holds no tensor of {type(model).__name__} (names and shapes differ); "
                         "is it a checkpoint of this model?", option="init")
    model.load_state_dict(taken, strict=False)


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and os.environ.get("IQARENA_DDP_BACKEND") != "gloo" else "gloo"
        dist.init_process_group(backend)
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def _gather(x: torch.Tensor, world: int) -> torch.Tensor:
    """Concatenate a tensor across processes, differentiably (rank order)."""
    if world == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x))


# ---------------------------------------------------------------- checkpoints

def _state(model: nn.Module) -> dict:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def save_run_checkpoint(path: Path, cfg: Config, model: nn.Module, meta: dict, train_state: dict | None) -> None:
    blob = {"format": FORMAT, "version": VERSION, "metric": cfg.model.name, "options": dict(cfg.model.options),
            "state_dict": _state(model), "meta": meta}
    if train_state is not None:
        blob["train_state"] = train_state
    with atomic_output(path) as tmp:
        torch.save(blob, tmp)


def _prepare_out(cfg: Config, resume: bool, overwrite: bool) -> Path:
    out = Path(cfg.train.out)
    last = out / LAST
    if resume:
        if not last.is_file():
            raise InputError(f"nothing to resume: {last} does not exist. Start the run without resume.")
        return out
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InputError(f"{out} is not empty (a run or other files); resume it, choose another train.out, or "
                         "allow replacing the run's files (overwrite=True).", option="overwrite")
    out.mkdir(parents=True, exist_ok=True)
    for name in (LAST, BEST, "steps.csv", "epochs.csv", "curves.png", "config.json"):
        (out / name).unlink(missing_ok=True)
    return out


def _check_resumable(blob: dict, cfg: Config) -> None:
    saved = blob.get("train_state", {}).get("config")
    if saved is None:
        raise InputError("last.pt has no training state (is it a best.pt copy?); it cannot be resumed.")
    now = cfg.as_dict()
    differ = [f"{s}.{k}" for s in now for k in now[s]
              if (s, k) not in {("train", "progress")} and saved.get(s, {}).get(k) != now[s][k]]
    if differ:
        raise InputError(f"the run was started with other settings ({', '.join(differ)}); resume with the same "
                         "config, or start a new run in another folder.")


def _truncate_log(path: Path, key: str, keep_below: int) -> None:
    """Drop the rows written after the checkpoint a run resumes from (a kill leaves them behind)."""
    if not path.is_file():
        return
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    fields = list(rows[0]) if rows else None
    with atomic_output(path) as tmp, tmp.open("w", newline="") as fh:
        if fields:
            w = csv.DictWriter(fh, fields, lineterminator="\n")
            w.writeheader()
            w.writerows(r for r in rows if int(r[key]) < keep_below)


def _append(path: Path, row: dict) -> None:
    new = not path.is_file()
    with path.open("a", newline="") as fh:
        w = csv.DictWriter(fh, list(row), lineterminator="\n")
        if new:
            w.writeheader()
        w.writerow(row)


# ---------------------------------------------------------------- validation and plots

def validate(model: nn.Module, kind: str, ds, device: torch.device, name: str,
             features: torch.Tensor | None = None) -> dict:
    """The NTIRE statistics of ``model`` on ``ds``, scored through the executor like any metric (or from
    cached frozen ``features``)."""
    if features is not None:
        model.eval()
        with torch.no_grad():
            scores = model.from_features(features.to(device)).double().cpu().numpy()
        model.train()
        r = evaluate(scores, ds.scores, higher_better=True)
        return {"srcc": r.srcc, "plcc": r.plcc, "main": r.main}
    info = MetricInfo(name, kind, True, (-math.inf, math.inf), lambda: model, module=True, family="model")
    METRICS.add(name, info, replace=True)
    try:
        with LocalExecutor(device=device, batch_size=8, workers=2) as ex:
            scores = score_items(dataset_items(ds), [MetricSpec(name)], ex, chunk=256)[:, 0]
    finally:
        METRICS.remove(name)
        model.train()
    r = evaluate(scores, ds.scores, higher_better=True)  # a model learns the labels' own direction
    return {"srcc": r.srcc, "plcc": r.plcc, "main": r.main}


def compute_features(model: nn.Module, ds, need_ref: bool, flips: bool, device: torch.device,
                     cache_key: str = "", progress: bool = False) -> torch.Tensor:
    """(views, N, D) frozen features of every image of ``ds`` (views: as is, and flipped if ``flips``).

    With a ``cache_key`` (the model's fingerprint) they are kept in iqarena's cache folder
    (``features/``), per image, so cross-validation folds and reruns compute each image once."""
    from ..weights import home

    n_views = 2 if flips else 1
    file = home() / "features" / f"{cache_key}-{n_views}.pt" if cache_key else None
    known: dict[str, torch.Tensor] = {}
    if file is not None and file.is_file():
        known = torch.load(file, weights_only=True)
    data = PairData(ds, need_ref=need_ref)
    keys = [f"{ds.root.resolve()}/{r.dist}" for r in ds.rows]
    todo = [i for i, k in enumerate(keys) if k not in known]
    model.eval()
    with torch.no_grad(), progress_bar(progress and bool(todo), len(todo), "features") as advance:
        for i in todo:
            d, r, _, _ = data[i]
            r = r.to(device) if r.numel() else None
            views = [(d, r)] + ([(d.flip(-1), r.flip(-1) if r is not None else None)] if flips else [])
            known[keys[i]] = torch.stack([model.frozen_features(v.to(device), w)[0] for v, w in views]).cpu()
            advance(1)
    model.train()
    if file is not None and todo:
        with atomic_output(file) as tmp:
            torch.save(known, tmp)
    return torch.stack([known[k] for k in keys], dim=1)


def export_trained(checkpoint: str | Path, output: str | Path, *, half: bool = True,
                   overwrite: bool = False) -> Path:
    """The trained part of a checkpoint (the tensors of its trainable parameters and its label scale), for
    a model's ``trained=FILE`` option or a bundled file; float16 where ``half`` (matrices and vectors of
    weights; the label scale stays float32). The rest comes from the pretrained trunk when it loads."""
    from ..io import output_path

    output = output_path(output, overwrite)
    blob = read_checkpoint(checkpoint)
    net = get_info(blob["metric"]).target(**{**blob["options"], "trained": False})
    trained = {n for n, p in net.named_parameters() if p.requires_grad} | {"label_mean", "label_std"}
    part = {k: v for k, v in blob["state_dict"].items() if k in trained}
    if half:
        part = {k: v.half() if k not in ("label_mean", "label_std") and v.is_floating_point() else v
                for k, v in part.items()}
    with atomic_output(output) as tmp:
        torch.save(part, tmp)
    return output


def plot_curves(out: Path) -> Path | None:
    """curves.png: the training loss per step and the validation main score per epoch."""
    steps, epochs = out / "steps.csv", out / "epochs.csv"
    if not steps.is_file():
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with steps.open() as fh:
        s = list(csv.DictReader(fh))
    with epochs.open() if epochs.is_file() else open(os.devnull) as fh:
        e = list(csv.DictReader(fh))
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    x = np.array([int(r["step"]) for r in s])
    y = np.array([float(r["loss"]) for r in s])
    ax[0].plot(x, y, lw=0.6, alpha=0.5, label="loss")
    if len(y) >= 10:
        k = max(1, len(y) // 20)
        ax[0].plot(x[k - 1:], np.convolve(y, np.ones(k) / k, "valid"), lw=1.5, label=f"mean of {k}")
    ax[0].set(xlabel="step", ylabel="training loss")
    ax[0].legend()
    if e:
        ep = [int(r["epoch"]) for r in e]
        for key in ("srcc", "plcc", "main"):
            ax[1].plot(ep, [float(r[f"val_{key}"]) for r in e], marker="o", label=key)
        ax[1].set(xlabel="epoch", ylabel="validation")
        ax[1].legend()
    fig.tight_layout()
    path = out / "curves.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------- the loop

def train(cfg: Config, *, resume: bool = False, overwrite: bool = False, log=print) -> TrainResult:
    """Train as ``cfg`` says; see the module docstring."""
    rank, world = _distributed()
    device = torch.device(cfg.train.device if world == 1 or not cfg.train.device.startswith("cuda")
                          else f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("train.device is cuda, but torch sees no CUDA device; use cpu.", option="device")
    out = _prepare_out(cfg, resume, overwrite) if rank == 0 else Path(cfg.train.out)
    if world > 1:
        dist.barrier()
    torch.manual_seed(cfg.train.seed)

    model, info = build_model(cfg)
    train_ds, val_ds = load_splits(cfg.data)
    if cfg.data.batch_size % world:
        raise InputError(f"data.batch_size {cfg.data.batch_size} must be a multiple of the {world} processes.")
    per_rank = cfg.data.batch_size // world
    model.to(device)
    val_features = None
    if cfg.data.cache_features:
        if not getattr(model, "features_frozen", False):
            raise InputError(f"data.cache_features needs a model whose features are frozen ({cfg.model.name} with "
                             "these options trains its trunk); turn it off or freeze the trunk.")
        if cfg.data.crop or cfg.data.crops_per_image != 1 or world > 1:
            raise InputError("data.cache_features computes each image's features once: it takes whole images "
                             "(data.crop = 0, one crop) in one process.")
        log(f"computing the frozen features of {len(train_ds)} + {len(val_ds or ())} images once")
        key = fingerprint(MetricSpec.of(cfg.model.name, **cfg.model.options))
        views = compute_features(model, train_ds, info.needs_ref, cfg.data.flip, device, key, cfg.train.progress)
        val_features = compute_features(model, val_ds, info.needs_ref, cfg.data.flip, device, key,
                                         cfg.train.progress)[0] if val_ds is not None else torch.empty(0)
        data = FeatureData(views, torch.tensor(train_ds.scores, dtype=torch.float32), cfg.train.seed)
    else:
        data = PairData(train_ds, crop=cfg.data.crop, crops=cfg.data.crops_per_image, flip=cfg.data.flip,
                        seed=cfg.train.seed, cache=cfg.data.cache, need_ref=info.needs_ref)
    sampler = EpochSampler(len(data), cfg.train.seed, rank, world,
                           repeats=oversampling(train_ds.scores, cfg.data.oversample_below, cfg.data.oversample_factor),
                           groups=[r.content for r in train_ds.rows], per_group=cfg.data.per_reference)
    steps_per_epoch = math.ceil(len(sampler.order()) / per_rank)
    if cfg.train.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, cfg.train.max_steps_per_epoch)
    # its own generator: making an epoch's iterator must not draw from the global RNG (dropout's)
    loader = DataLoader(data, batch_size=per_rank, sampler=sampler, collate_fn=collate,
                        num_workers=cfg.data.workers, generator=torch.Generator().manual_seed(cfg.train.seed))
    own_only = cfg.train.loss.strip().lower() == "none"  # the model's own objective alone (RADN's pre-training)
    if own_only and type(model).auxiliary_loss is IQAModel.auxiliary_loss:
        raise InputError(f"train.loss = \"none\" trains on the model's own objective, and {cfg.model.name} has none; "
                         "give a loss spec such as \"plcc+0.1*l1\".", option="loss")
    loss_fn = None if own_only else build_loss(cfg.train.loss)
    takes_groups = not own_only and "groups" in inspect.signature(loss_fn.forward).parameters
    contents = {c: i for i, c in enumerate(sorted({r.content for r in train_ds.rows}))}
    groups_of = torch.tensor([contents[r.content] for r in train_ds.rows])  # the same ids in every process
    kinds = {g: i for i, g in enumerate(sorted({r.group for r in train_ds.rows}))}
    kind_of = torch.tensor([kinds[r.group] for r in train_ds.rows])  # Row.group (distortion type) as class ids
    takes_aux = callable(getattr(model, "auxiliary_loss", None))

    model.to(device).train()
    optimizer = build_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, group_factors(optimizer, steps_per_epoch, cfg))
    amp = cfg.optim.amp and device.type == "cuda"
    amp_dtype = torch.bfloat16 if amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=amp and amp_dtype == torch.float16)
    net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) \
        if world > 1 else model

    epoch, start_step, global_step, best, best_epoch = 0, 0, 0, -math.inf, -1
    resumed_losses: list[float] = []
    if resume:
        blob = read_checkpoint(out / LAST)
        _check_resumable(blob, cfg)
        st = blob["train_state"]
        model.load_state_dict(blob["state_dict"])
        optimizer.load_state_dict(st["optimizer"])
        scheduler.load_state_dict(st["scheduler"])
        scaler.load_state_dict(st["scaler"])
        torch.set_rng_state(st["rng"][rank] if isinstance(st["rng"], list) else st["rng"])
        epoch, start_step, global_step = st["epoch"], st["step_in_epoch"], st["global_step"]
        resumed_losses = list(st["epoch_losses"])
        best, best_epoch = st["best_main"], st["best_epoch"]
        if rank == 0:
            _truncate_log(out / "steps.csv", "step", global_step)
            _truncate_log(out / "epochs.csv", "epoch", epoch + 1)  # rows of the finished epochs (1-based)
        log(f"resuming {out} at epoch {epoch + 1}, step {start_step} of {steps_per_epoch}")
    else:
        if hasattr(model, "set_label_stats"):
            model.set_label_stats(float(train_ds.scores.mean()), float(train_ds.scores.std()))
        if cfg.train.init:
            start_from(model, cfg.train.init)
            log(f"starting from the tensors of {cfg.train.init}")
    if not resume and rank == 0:
        (out / "config.json").write_text(json.dumps(cfg.as_dict(), indent=1) + "\n")
        log(f"{train_ds.describe()} | val {len(val_ds) if val_ds is not None else 'none'} images; "
            f"{steps_per_epoch} steps per epoch; writing {out}")

    def checkpoint(step_in_epoch: int, ep: int, losses: list[float]) -> None:
        rng = torch.get_rng_state()
        states = [None] * world
        if world > 1:
            dist.all_gather_object(states, rng)
        else:
            states = [rng]
        if rank == 0:
            state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                     "scaler": scaler.state_dict(), "rng": states, "epoch": ep, "step_in_epoch": step_in_epoch,
                     "global_step": global_step, "best_main": best, "best_epoch": best_epoch,
                     "epoch_losses": list(losses),
                     "config": cfg.as_dict()}
            save_run_checkpoint(out / LAST, cfg, model, {"epoch": ep, "global_step": global_step}, state)

    last_loss = math.nan
    while epoch < cfg.train.epochs:
        data.set_epoch(epoch)
        sampler.set_epoch(epoch, start_step * per_rank)
        t0, losses, resumed_losses = time.time(), resumed_losses, []
        with progress_bar(cfg.train.progress and rank == 0, steps_per_epoch - start_step,
                          f"epoch {epoch + 1}/{cfg.train.epochs}") as advance:
            for step_in_epoch, (d, r, y, idx) in enumerate(loader, start=start_step):
                if step_in_epoch >= steps_per_epoch:
                    break
                d, y = d.to(device), y.to(device)
                r = r.to(device) if r is not None else None
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp):
                    if cfg.data.cache_features:
                        pred = model.from_features(d)
                    else:
                        pred = net(d, r) if info.needs_ref else net(d)
                y_local = y  # this process's labels, for the model's own objective on its own forward
                pred, y = _gather(pred.float(), world), _gather(y, world)
                kwargs = {"groups": _gather(groups_of[idx].to(device), world)} if takes_groups else {}
                loss = loss_fn(pred, y, **kwargs) if loss_fn is not None else pred.new_zeros(())
                if takes_aux:  # the model's own objective on its last forward (a distortion-type head ...)
                    aux = model.auxiliary_loss({"score": y_local, "kind": kind_of[idx].to(device),
                                                "content": groups_of[idx].to(device)})
                    loss = loss + aux if aux is not None else loss
                if not torch.isfinite(loss):
                    raise InputError(f"the training loss became {loss.item()} at epoch {epoch + 1}, step "
                                     f"{step_in_epoch}; lower optim.lr or check the labels.")
                optimizer.zero_grad(set_to_none=True)
                # every process holds the same global loss: all_gather's backward sums their gradients (x world),
                # DDP's all-reduce averages them (/ world), so the step equals a single-process one
                scaler.scale(loss).backward()
                if cfg.optim.clip_grad:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.clip_grad)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                global_step += 1
                last_loss = loss.item()
                losses.append(last_loss)
                advance(1)
                if rank == 0:
                    _append(out / "steps.csv", {"step": global_step - 1, "epoch": epoch + 1, "loss": repr(last_loss),
                                                "lr": repr(scheduler.get_last_lr()[0])})
                if cfg.train.save_every and global_step % cfg.train.save_every == 0 \
                        and step_in_epoch + 1 < steps_per_epoch:
                    checkpoint(step_in_epoch + 1, epoch, losses)
        start_step = 0
        epoch += 1
        if rank == 0:
            val = validate(model, info.kind, val_ds, device, f"validation:{out}", val_features) \
                if val_ds is not None else {"srcc": math.nan, "plcc": math.nan, "main": math.nan}
            if val["main"] > best or val_ds is None:
                best, best_epoch = val["main"], epoch
                save_run_checkpoint(out / BEST, cfg, model, {"epoch": epoch, "val": val}, None)
            _append(out / "epochs.csv", {"epoch": epoch, "train_loss": repr(float(np.mean(losses)) if losses else
                                                                            math.nan),
                                         "val_srcc": repr(val["srcc"]), "val_plcc": repr(val["plcc"]),
                                         "val_main": repr(val["main"]), "seconds": f"{time.time() - t0:.1f}"})
            log(f"epoch {epoch}/{cfg.train.epochs}: loss {np.mean(losses):.4f}, val SRCC {val['srcc']:.4f} "
                f"PLCC {val['plcc']:.4f} main {val['main']:.4f} ({time.time() - t0:.0f} s)")
            if val_ds is None:
                best, best_epoch = math.nan, epoch
        if world > 1:
            payload = [best, best_epoch]
            dist.broadcast_object_list(payload, src=0)
            best, best_epoch = payload
        checkpoint(0, epoch, [])
        if rank == 0:
            plot_curves(out)
    if world > 1:
        dist.barrier()
    return TrainResult(out, epoch, best, best_epoch, last_loss)
