"""Property checks shared by the metric tests: distortions of a real image, batch consistency."""

from __future__ import annotations

import io

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from iqarena.ops.filters import fspecial_gaussian, imfilter


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    size = int(2 * np.ceil(3 * sigma) + 1)
    return imfilter(x, fspecial_gaussian(size, sigma), "replicate")


def noise(x: torch.Tensor, std: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (x + std * torch.randn(x.shape, generator=g)).clamp(0, 1)


def jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    out = []
    for img in x:
        arr = (img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        mode = "L" if arr.shape[2] == 1 else "RGB"
        buf = io.BytesIO()
        Image.fromarray(arr.squeeze(2) if mode == "L" else arr, mode).save(buf, "JPEG", quality=quality)
        dec = np.asarray(Image.open(buf), dtype=np.float32) / 255
        out.append(torch.from_numpy(dec.reshape(arr.shape)).permute(2, 0, 1))
    return torch.stack(out)


DISTORTIONS = {
    "blur": (blur, [0.5, 1.0, 2.0, 4.0]),
    "noise": (noise, [0.01, 0.03, 0.08, 0.2]),
    "jpeg": (jpeg, [90, 50, 20, 5]),
}


def monotone(scores: list[float], higher_better: bool) -> bool:
    """Scores for increasing distortion get strictly worse."""
    diffs = np.diff(scores)
    return bool((diffs < 0).all()) if higher_better else bool((diffs > 0).all())


def downscale(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    return F.avg_pool2d(x, factor)
