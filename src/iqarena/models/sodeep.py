"""SoDeep: a learned sorter as a differentiable rank, and the ``sodeep`` loss (a surrogate of 1 - SRCC).

Engilberge, Chevallier, Pérez, Cord, "SoDeep: a Sorting Deep net to learn ranking loss surrogates", CVPR 2019
(code: https://github.com/technicolor-research/sodeep, BSD-3-Clause-Clear): a network is trained on synthetic
vectors to output the ranks of their entries, then frozen; its output is a differentiable stand-in for the
rank, so a Spearman-like loss can be trained through it.

As the NTIRE 2021 Perceptual IQA team MACS used it (rank 9; Gu et al., CVPR-W 2021, Section 5.8;
Ayyoubzadeh and Royat, "(ASNA) An Attention-based Siamese-Difference Neural Network with Surrogate Ranking
Loss function for Perceptual Image Quality Assessment", CVPR-W 2021; code:
https://github.com/smehdia/NTIRE2021-IQA-MACS, Apache-2.0, files ``ranking_model/train.py`` and
``metrics_losses/metrics_and_losses.py``):

- the sorter (:class:`Sorter`, the report's Figure 11(d)): seven 1-D convolutions over the M entries (8, 16,
  32, 64, 96, 128, 256 channels; kernels 2, 3, 5, 7, 10, 7, 7; "same" padding, TensorFlow's: the extra
  tap of an even kernel on the right), each followed by a PReLU with one slope per entry and channel
  (Keras's default), batch norm after the 2nd, 3rd, 4th, 6th and 7th; then a dense layer from the
  flattened M x 256 features to M outputs. M = 16, the team's batch size.
- its training (:func:`train_sorter`): vectors of M entries, half drawn from N(0, 2^2) and half from
  U(-10, 10) (:func:`sorter_vectors`), the targets their 1-based ranks; mean absolute error, Adam at 1e-3.
- the loss: ``L = (1/M) ||R(S) - R(S')||^2`` with R the frozen sorter, S the labels and S' the predictions
  of a batch; the team weighted it 0.1 or 0.01 next to MSE and a Pearson term.

Choices where the sources leave one (each is an option):

- **Where the sorter comes from.** The team's trained file (``pretrained_models/ranking_model.hdf5``) is a
  Keras model that cannot be fetched or read here. ``sorter=""`` (the default) uses a sorter trained by
  :func:`train_sorter` with a fixed seed and schedule on first use and kept in iqarena's cache folder
  (``$IQARENA_HOME/sodeep/``; minutes of CPU, once: docs/models/asna.md); ``sorter=FILE`` loads a sorter
  saved by :func:`save_sorter`. The team trained 100 epochs over 1.6 M vectors (1024 a batch, the rate
  divided by 10 every 30 epochs); the default here draws fresh vectors every step, ``DEFAULT_STEPS`` steps
  of ``DEFAULT_BATCH`` with a cosine schedule, then recomputes the batch-norm statistics of the final
  weights (a short run's running averages still remember its first steps).
- **Scale of the sorter's input.** The team fed labels standardised with PIPAL's global mean and deviation
  (their ``ranking_model/test.py`` checks the sorter on N(0, 1) vectors). Here each batch (each chunk of M)
  is standardised on its own (mean 0, population deviation 1): the loss is then invariant to
  ``pred -> a * pred + b`` (a > 0) and reads Elo-scale labels as they come.
- **Batches of another size than M.** The sorter reads exactly M entries. A batch is cut into chunks of M
  in its order (the trainer's batches are drawn at random, so chunks are random subsets); a chunk of
  n < M entries is completed with M - n fixed values below any standardised entry (spread over [-10, -8.5],
  inside the training range), which take the lowest ranks on both sides, and only the n real entries
  are compared. The loss is the mean over all real entries; with N = M it is the team's formula exactly.
  A chunk of one entry carries no order and adds nothing.
"""

from __future__ import annotations

import hashlib
import math
import sys
from pathlib import Path

import torch
from torch import nn

from ..errors import InputError
from .losses import Loss, _register

LENGTH = 16  # M: the team's batch size and sorter width
CHANNELS = (8, 16, 32, 64, 96, 128, 256)
KERNELS = (2, 3, 5, 7, 10, 7, 7)
NORMS = (False, True, True, True, False, True, True)  # batch norm after these convolutions
DEFAULT_STEPS = 1000
DEFAULT_BATCH = 256
DEFAULT_SEED = 0
PAD_LOW, PAD_HIGH = -10.0, -8.5  # filler values of a short chunk: below any standardised entry of <= M values


class _EntryPReLU(nn.Module):
    """PReLU with one slope per channel and entry (Keras's ``PReLU()`` on a (M, C) input), slopes start at 0."""

    def __init__(self, channels: int, length: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(channels, length))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(x >= 0, x, self.weight * x)


class Sorter(nn.Module):
    """The team's ranking network: (B, M) values -> (B, M) estimated 1-based ranks (see the module docstring).

    ``width`` multiplies every channel count (1: the team's network, about 470 k parameters); the tests
    train a narrow one in seconds."""

    def __init__(self, length: int = LENGTH, width: float = 1.0):
        super().__init__()
        if length < 2:
            raise InputError(f"a sorter ranks at least 2 values, got length {length}.")
        self.length, self.width = int(length), float(width)
        chans = [max(1, round(c * width)) for c in CHANNELS]
        layers: list[nn.Module] = []
        before = 1
        for c, k, norm in zip(chans, KERNELS, NORMS):
            layers.append(nn.ConstantPad1d(((k - 1) // 2, k // 2), 0.0))  # Keras's "same": an even kernel's extra tap right
            layers.append(nn.Conv1d(before, c, k))
            if norm:  # the team's order: convolution, batch norm, PReLU (Keras's momentum 0.99 and epsilon 1e-3)
                layers.append(nn.BatchNorm1d(c, eps=1e-3, momentum=0.01))
            layers.append(_EntryPReLU(c, self.length))
            before = c
        self.features = nn.Sequential(*layers)
        self.out = nn.Linear(before * self.length, self.length)
        for m in self.modules():  # Keras's initialisation: Glorot-uniform kernels, zero biases
            if isinstance(m, (nn.Conv1d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.length:
            raise InputError(f"the sorter ranks vectors of {self.length} values, (B, {self.length}); got "
                             f"{tuple(x.shape)}.")
        return self.out(self.features(x[:, None, :]).flatten(1))


def true_ranks(x: torch.Tensor) -> torch.Tensor:
    """1-based ranks along the last dimension, ties given their average (scipy.stats.rankdata's default)."""
    d = x[..., :, None] - x[..., None, :]
    return 0.5 + (d > 0).to(x.dtype).sum(-1) + 0.5 * (d == 0).to(x.dtype).sum(-1)


def sorter_vectors(n: int, length: int = LENGTH, generator: torch.Generator | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """The team's synthetic training set: ``n`` vectors of ``length`` values, the first half from N(0, 2^2),
    the rest from U(-10, 10), with their 1-based ranks. Float32, (n, length) each."""
    half = n // 2
    normal = 2.0 * torch.randn(half, length, generator=generator)
    uniform = torch.rand(n - half, length, generator=generator) * 20.0 - 10.0
    x = torch.cat([normal, uniform])
    return x, true_ranks(x)


def train_sorter(length: int = LENGTH, steps: int = DEFAULT_STEPS, batch: int = DEFAULT_BATCH,
                 seed: int = DEFAULT_SEED, width: float = 1.0, lr: float = 1e-3, log=None) -> Sorter:
    """A :class:`Sorter` trained as the team did (their vectors, mean absolute error against the true ranks,
    Adam at ``lr``), on ``steps`` fresh batches of ``batch`` vectors with a cosine decay of the rate. Seeded:
    the same arguments give the same sorter on the same platform; the global random state is left as it
    was. Returned in eval mode with its parameters frozen."""
    if steps < 1 or batch < 2:
        raise InputError(f"train_sorter needs steps >= 1 and batch >= 2, got {steps} and {batch}.")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        sorter = Sorter(length, width)
        gen = torch.Generator().manual_seed(seed + 1)
        opt = torch.optim.Adam(sorter.parameters(), lr=lr)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
        sorter.train()
        for step in range(steps):
            x, r = sorter_vectors(batch, length, gen)
            loss = (sorter(x) - r).abs().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if log is not None and (step + 1) % max(1, steps // 10) == 0:
                log(f"sorter step {step + 1}/{steps}: mean absolute rank error {loss.item():.3f}")
        # batch-norm statistics of the final weights (a running mean with momentum 0.01 still remembers the first
        # steps' after a short run): an equal-weight average over 16 fresh batches
        norms = [m for m in sorter.modules() if isinstance(m, nn.BatchNorm1d)]
        with torch.no_grad():
            for m in norms:
                m.reset_running_stats()
                m.momentum = None
            for _ in range(16):
                sorter(sorter_vectors(batch, length, gen)[0])
            for m in norms:
                m.momentum = 0.01
    return freeze(sorter)


def freeze(sorter: Sorter) -> Sorter:
    sorter.eval()
    for p in sorter.parameters():
        p.requires_grad_(False)
        p.grad = None
    return sorter


def save_sorter(sorter: Sorter, path: str | Path) -> Path:
    """Write a sorter's state dict with its length and width (``{"length", "width", "state_dict"}``)."""
    from ..io import atomic_output

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        torch.save({"length": sorter.length, "width": sorter.width,
                    "state_dict": {k: v.detach().cpu() for k, v in sorter.state_dict().items()}}, tmp)
    return path


def read_sorter(path: str | Path) -> Sorter:
    """A sorter written by :func:`save_sorter`; InputError for a missing or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"sorter file {path} not found; give a file written by iqarena.models.sodeep.save_sorter, "
                         "or leave the option empty to use the cached default sorter.", option="sorter")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        sorter = Sorter(int(blob["length"]), float(blob["width"]))
        sorter.load_state_dict(blob["state_dict"])
    except (KeyError, TypeError, RuntimeError, ValueError) as exc:
        raise InputError(f"{path} is not a sorter file written by save_sorter ({exc}).", option="sorter") from None
    return freeze(sorter)


def default_sorter_path(length: int = LENGTH, steps: int = DEFAULT_STEPS, batch: int = DEFAULT_BATCH,
                        seed: int = DEFAULT_SEED) -> Path:
    """Where the default sorter of these settings is cached: ``$IQARENA_HOME/sodeep/sorter-....pt``."""
    from ..weights import home

    key = hashlib.sha256(f"{CHANNELS}{KERNELS}{NORMS}".encode()).hexdigest()[:8]
    return home() / "sodeep" / f"sorter-m{length}-n{steps}-b{batch}-s{seed}-{key}.pt"


def default_sorter(length: int = LENGTH) -> Sorter:
    """The cached default sorter of ``length`` entries, trained (and cached) on first use."""
    path = default_sorter_path(length)
    if path.is_file():
        return read_sorter(path)
    print(f"sodeep: training the default {length}-entry sorter once ({DEFAULT_STEPS} steps, seed {DEFAULT_SEED}); "
          f"it is kept in {path}", file=sys.stderr)
    sorter = train_sorter(length)
    save_sorter(sorter, path)
    return sorter


@_register("sodeep", aliases=("surrogate_rank",))
class SoDeepLoss(Loss):
    """Surrogate rank loss of MACS (NTIRE 2021, after SoDeep, Engilberge et al., CVPR 2019):
    ``(1/M) ||R(z(target)) - R(z(pred))||^2`` with R a frozen learned sorter of M entries and z the
    standardisation of each chunk of M (mean 0, deviation 1); chunks shorter than M are completed with
    fixed low values and only their real entries compared (iqarena.models.sodeep's docstring). About
    ``(M^2 - 1) / 6 * (1 - SRCC)`` for a good sorter (42.5 x for M = 16). ``sorter``: a file written by
    ``save_sorter`` (its length wins), or "" for the default sorter of ``length`` entries (trained once with
    a fixed seed, then cached)."""

    min_n = 2

    def __init__(self, sorter: str = "", length: int = LENGTH, eps: float = 1e-8, check: bool = True):
        super().__init__(check)
        if isinstance(sorter, Sorter):
            net = freeze(sorter)
        elif sorter:
            net = read_sorter(sorter)
        else:
            net = default_sorter(int(length))
        self.sorter_net = net
        self.length = net.length
        self.eps = float(eps)

    def train(self, mode: bool = True):  # the sorter stays frozen, its batch norm in eval mode
        super().train(mode)
        self.sorter_net.eval()
        return self

    def _chunks(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(chunks, mask): x cut into rows of M, each standardised, short rows filled; mask marks real entries."""
        m, n = self.length, x.shape[0]
        rows = math.ceil(n / m)
        fill = torch.linspace(PAD_LOW, PAD_HIGH, m, dtype=x.dtype, device=x.device)
        out, mask = [], []
        for r in range(rows):
            part = x[r * m:(r + 1) * m]
            k = part.shape[0]
            z = (part - part.mean()) / part.std(correction=0).clamp_min(self.eps) if k > 1 else part * 0
            out.append(torch.cat([z, fill[:m - k]]))
            mask.append(torch.cat([torch.full((k,), float(k > 1), dtype=x.dtype, device=x.device),
                                   torch.zeros(m - k, dtype=x.dtype, device=x.device)]))
        return torch.stack(out), torch.stack(mask)

    def compute(self, pred, target, groups):
        net = self.sorter_net
        p = next(net.parameters())
        if p.device != pred.device or p.dtype != pred.dtype:
            net.to(device=pred.device, dtype=pred.dtype)
        zp, mask = self._chunks(pred)
        zt, _ = self._chunks(target)
        with torch.no_grad():
            rt = net(zt)
        rp = net(zp)
        return ((rp - rt).pow(2) * mask).sum() / mask.sum().clamp_min(1.0)
