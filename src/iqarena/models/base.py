"""What every learned model shares: the metric convention and test-time crop ensembles.

A model is an ``nn.Module`` called like a metric, ``model(dist, ref)`` (full-reference) or
``model(dist)`` (no-reference), on NCHW images in [0, 1], returning scores of shape (N,). A subclass
implements ``score`` on inputs of any size; :class:`IQAModel` adds the crop ensembles the challenge's
teams used at test time, so they are part of the model's options (and of a checkpoint): a checkpoint
scores the same through ``iqarena predict``, ``iqarena score -m ckpt.pt`` and ``create_metric``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import InputError
from ..metrics.registry import check_image
from ..weights import load_state_dict

def check_pair(name: str, dist: torch.Tensor, ref: torch.Tensor | None, min_side: int = 0, why: str = "") -> None:
    """The input check every full-reference model runs first: InputError unless a reference is given, both
    are float (N, 1|3, H, W) images (metrics.registry.check_image, shapes only) of the same shape, and each
    side has at least ``min_side`` pixels (``why`` says what needs them)."""
    if ref is None:
        raise InputError(f"{name} is a full-reference model: call it as model(dist, ref).")
    check_image(dist, "dist", values=False)
    check_image(ref, "ref", values=False)
    if dist.shape != ref.shape:
        raise InputError(f"{name} needs dist and ref of one shape (the same shape, N x C x H x W); they differ in "
                         f"shape: {tuple(dist.shape)} and {tuple(ref.shape)}.")
    h, w = dist.shape[-2:]
    if min(h, w) < min_side:
        raise InputError(f"{name} needs images of at least {min_side}x{min_side} pixels ({why}); got {w}x{h}.")


CROP_LAYOUTS = ("five", "centre", "random", "grid")


def crop_boxes(height: int, width: int, size: int, layout: str = "five", n: int = 5,
               seed: int = 0) -> list[tuple[int, int]]:
    """Top-left corners of ``size`` x ``size`` crops: ``five`` (the corners and the centre), ``centre``,
    ``random`` (``n`` seeded positions, the same for every image of that size), ``grid`` (``n`` per side,
    evenly spaced, overlapping as needed to cover the image)."""
    if size > height or size > width:
        raise InputError(f"crop size {size} is larger than the image ({width}x{height}); use a smaller crop or "
                         "0 for the whole image.", option="crop")
    dy, dx = height - size, width - size
    if layout == "centre":
        return [(dy // 2, dx // 2)]
    if layout == "five":
        return [(0, 0), (0, dx), (dy, 0), (dy, dx), (dy // 2, dx // 2)]
    if layout == "random":
        g = torch.Generator().manual_seed(seed)
        ys = torch.randint(0, dy + 1, (n,), generator=g).tolist()
        xs = torch.randint(0, dx + 1, (n,), generator=g).tolist()
        return list(zip(ys, xs))
    if layout == "grid":
        steps = [round(i * d / max(1, n - 1)) for d in (dy, dx) for i in range(n)]
        return [(y, x) for y in steps[:n] for x in steps[n:]]
    raise InputError(f"unknown crop layout {layout!r}; choose one of {', '.join(CROP_LAYOUTS)}.")


class IQAModel(nn.Module):
    """Base of the learned models. ``test_crop`` (0: the whole image) and ``test_layout``/``test_crops``
    choose the crops averaged in eval mode; training always scores what it is given.

    A subclass's ``score`` ends with ``self.unstandardise(raw)``: its head predicts standardised labels
    and the scores come out on the labels' own scale (the trainer calls ``set_label_stats`` with the
    training labels' mean and deviation). Batch-norm statistics stay frozen in training when
    ``frozen_batchnorm`` (IQA batches are small and their images correlated).
    """

    kind: str = "fr"  # "fr" or "nr"
    frozen_batchnorm: bool = True

    def __init__(self, test_crop: int = 0, test_layout: str = "five", test_crops: int = 5):
        super().__init__()
        if test_layout not in CROP_LAYOUTS:
            raise InputError(f"unknown crop layout {test_layout!r}; choose one of {', '.join(CROP_LAYOUTS)}.")
        self.test_crop, self.test_layout, self.test_crops = int(test_crop), test_layout, int(test_crops)
        self.register_buffer("label_mean", torch.zeros(()))
        self.register_buffer("label_std", torch.ones(()))

    def set_label_stats(self, mean: float, std: float) -> None:
        self.label_mean.fill_(mean)
        self.label_std.fill_(std if std > 0 else 1.0)

    def unstandardise(self, raw: torch.Tensor) -> torch.Tensor:
        return raw * self.label_std + self.label_mean

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen_batchnorm:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def score(self, dist: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def auxiliary_loss(self, targets: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """The model's own objective on its last training forward, added by the trainer to the configured
        loss (a distortion-type head, a feature-similarity term); None when it has none. ``targets``:
        ``score`` (N,) labels, ``kind`` (N,) class ids of the rows' ``group`` (PIPAL's distortion type),
        ``content`` (N,) reference ids."""
        return None

    def forward(self, dist: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        dist = dist.to(self.label_mean.dtype)  # the network's precision (float64 input would not meet float32 weights)
        ref = ref.to(self.label_mean.dtype) if ref is not None else None
        if self.training or not self.test_crop:
            return self.score(dist, ref)
        h, w = dist.shape[-2:]
        size = self.test_crop
        boxes = crop_boxes(h, w, size, self.test_layout, self.test_crops)
        total = 0
        for y, x in boxes:
            d = dist[..., y:y + size, x:x + size]
            r = ref[..., y:y + size, x:x + size] if ref is not None else None
            total = total + self.score(d, r)
        return total / len(boxes)


def load_trained(model: nn.Module, source: str | Path) -> None:
    """Load a model's trained part (a catalogue name or a file of some of its tensors; the rest keeps its
    pretrained values); InputError for tensors the model does not have."""
    sd = load_state_dict(source)
    result = model.load_state_dict(sd, strict=False)
    if result.unexpected_keys:
        raise InputError(f"{source} holds tensors {type(model).__name__} does not have "
                         f"({', '.join(result.unexpected_keys[:3])}); is it the trained part of another model?")
