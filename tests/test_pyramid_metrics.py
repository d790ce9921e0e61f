"""Steerable pyramids (ops.pyramid) and the multi-scale / pyramid metrics: ms_ssim, cw_ssim, vif, vifp, ifc."""

from __future__ import annotations

import math

import pytest
import torch

from iqarena.errors import IQAError
from iqarena.metrics import create_metric
from iqarena.ops import filters
from iqarena.ops.color import quantize8
from iqarena.ops.pyramid import build_spyr, corr_dn, scf_bands

from conftest import assert_printed_precision
from properties import DISTORTIONS, downscale, monotone

NAMES = ["ms_ssim", "cw_ssim", "vif", "vifp", "ifc"]


# ---- calibration: official values of the original MATLAB code ----

@pytest.mark.parametrize("name", ["ms_ssim", "cw_ssim", "vif"])
def test_official_values(pairs, name):
    dist, ref = pairs
    assert_printed_precision(create_metric(name)(dist, ref), name)


def test_ms_ssim_product_is_plain_msssim(pairs):
    """msssim.m's default pooling ('product'); values from the calibration notes (../shared README)."""
    dist, ref = pairs
    got = create_metric("ms_ssim", method="product")(dist, ref)
    expected = torch.tensor([0.669979, 0.999634, 0.999823, 0.956527, 0.841789])
    assert torch.allclose(got, expected, atol=2e-6), got


# ---- properties on the real I01 image (half size to keep the suite fast) ----

@pytest.fixture(scope="module")
def small(i01):
    return downscale(i01, 2)[..., 32:224]  # (1, 3, 192, 192): half size, central columns


@pytest.fixture(scope="module")
def distorted(small):
    return {kind: torch.cat([fn(small, level) for level in levels]) for kind, (fn, levels) in DISTORTIONS.items()}


@pytest.fixture(scope="module")
def scores(small, distorted):
    """name -> (identity score, {distortion: scores for increasing levels}), computed once."""
    out = {}
    for name in NAMES:
        metric = create_metric(name)
        batch = torch.cat([small] + list(distorted.values()))
        values = metric(batch, small.expand_as(batch))
        out[name] = (values[0], dict(zip(distorted, values[1:].split(4))))
    return out


@pytest.mark.parametrize("name", NAMES)
def test_monotone_in_distortion(name, scores):
    for kind, values in scores[name][1].items():
        assert monotone(values.tolist(), True), (name, kind, values)


@pytest.mark.parametrize("name", ["ms_ssim", "cw_ssim", "vif", "vifp"])
def test_identity_is_one(name, scores, goldhill):
    assert abs(scores[name][0] - 1) < 1e-5
    x = downscale(goldhill[1], 2)[..., :192, :192]
    assert torch.allclose(create_metric(name)(x, x), torch.ones(1), atol=1e-5)


def test_ifc_identity_is_largest(scores):
    best, by_kind = scores["ifc"]
    for values in by_kind.values():
        assert (values < best).all()


@pytest.mark.parametrize("name", NAMES)
def test_batch_equals_one_by_one(name, pairs):
    dist, ref = (t[[0, 3]] for t in pairs)
    dist, ref = downscale(dist, 2)[..., :192, :192], downscale(ref, 2)[..., :192, :192]
    metric = create_metric(name)
    batch = metric(dist, ref)
    single = torch.cat([metric(dist[i:i + 1], ref[i:i + 1]) for i in range(2)])
    assert torch.allclose(batch, single, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_grey_input_equals_replicated_colour(name, goldhill):
    # 192x192 of the half-size images, on the 8-bit grid (colour input is rounded by rgb2gray)
    jpeg, orig = (quantize8(downscale(x, 2)[..., :192, :192]) for x in goldhill)
    metric = create_metric(name)
    grey = metric(jpeg, orig)
    colour = metric(jpeg.expand(-1, 3, -1, -1), orig.expand(-1, 3, -1, -1))
    assert torch.isfinite(grey).all() and grey.shape == (1,)
    assert torch.allclose(grey, colour, rtol=1e-6)
    if name != "ifc":
        assert 0 < grey.item() < 1


def test_ms_ssim_rgb_option(goldhill):
    jpeg, orig = (downscale(x, 2) for x in goldhill)
    grey = create_metric("ms_ssim")(jpeg, orig)
    rgb = create_metric("ms_ssim", colour="rgb")(jpeg.expand(-1, 3, -1, -1), orig.expand(-1, 3, -1, -1))
    assert torch.allclose(grey, rgb, rtol=1e-6)


@pytest.mark.parametrize("name", ["ms_ssim", "cw_ssim", "vif", "vifp", "ifc"])
def test_gradients_finite(name, small, distorted):
    dist = distorted["noise"][1:2].clone().requires_grad_(True)
    score = create_metric(name, quantize=False)(dist, small)
    score.sum().backward()
    assert torch.isfinite(dist.grad).all() and dist.grad.abs().sum() > 0


# ---- errors ----

@pytest.mark.parametrize("name,side", [("ms_ssim", 150), ("cw_ssim", 60), ("vif", 60), ("ifc", 60), ("vifp", 40)])
def test_too_small_image(name, side):
    x = torch.rand(1, 1, side, side)
    with pytest.raises(IQAError, match="pixels|levels"):
        create_metric(name)(x, x)


def test_bad_options():
    x = torch.rand(1, 3, 256, 256)
    with pytest.raises(IQAError, match="method"):
        create_metric("ms_ssim", method="mean")(x, x)
    with pytest.raises(IQAError, match="colour"):
        create_metric("vif", colour="rgb")(x, x)


# ---- the pyramids themselves ----

def _reflect1(i: int, n: int) -> int:
    """Index reflected about the edge samples (matlabPyrTools 'reflect1')."""
    while i < 0 or i >= n:
        i = -i if i < 0 else 2 * (n - 1) - i
    return i


@pytest.mark.parametrize("conv_block", [None, 1, 40])  # whole image; ops.filters.conv_rows a row, or a few, at a time
def test_corr_dn_matches_definition(conv_block, monkeypatch):
    if conv_block:
        monkeypatch.setattr(filters, "_CONV_BLOCK", conv_block)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 1, 13, 11, generator=g, dtype=torch.float64)
    filt = torch.rand(1, 5, 3, generator=g, dtype=torch.float64)
    step, start, stop = (2, 3), (1, 2), (12, 10)
    got = corr_dn(x, filt, step=step, start=start, stop=stop)[0, 0, 0]
    rows, cols = range(start[0], stop[0], step[0]), range(start[1], stop[1], step[1])
    want = torch.zeros(len(rows), len(cols), dtype=torch.float64)
    for a, r in enumerate(rows):
        for b, c in enumerate(cols):
            for i in range(5):
                for j in range(3):
                    want[a, b] += filt[0, i, j] * x[0, 0, _reflect1(r + i - 2, 13), _reflect1(c + j - 1, 11)]
    assert torch.allclose(got, want)


def test_depthwise_convolution_in_row_blocks_equals_one_call(monkeypatch):
    """imfilter's convolution path (a kernel over SHIFTED_TAPS taps) per channel, whole or a few rows at a time."""
    g = torch.Generator().manual_seed(2)
    x = torch.rand(2, 3, 29, 31, generator=g, dtype=torch.float64)
    kernel = torch.rand(7, 7, generator=g, dtype=torch.float64)
    assert int((kernel != 0).sum()) > filters.SHIFTED_TAPS
    whole = filters.imfilter(x, kernel, "symmetric", "same")
    monkeypatch.setattr(filters, "_CONV_BLOCK", 500)
    blocked = filters.imfilter(x, kernel, "symmetric", "same")
    torch.testing.assert_close(blocked, whole, rtol=0, atol=1e-13)
    want = torch.nn.functional.conv2d(filters.pad(x[:, 1:2], 3, 3, 3, 3, "symmetric"), kernel[None, None])
    torch.testing.assert_close(blocked[:, 1:2], want, rtol=0, atol=1e-13)


@pytest.mark.parametrize("name, module, options", [("vif", "vif", {}), ("ifc", "vif", {}),
                                                    ("iw_ssim", "iw_ssim", {"double": True})])
def test_gsm_statistics_in_row_blocks_equal_one_block(name, module, options, pairs, monkeypatch):
    """The window and GSM statistics a row of blocks at a time (the smallest blocks) against one block for
    the whole band."""
    import importlib
    mod = importlib.import_module(f"iqarena.metrics.{module}")
    dist, ref = (t[:2].double() for t in pairs)
    monkeypatch.setattr(mod, "_CHUNK", 1)
    rows = create_metric(name, **options)(dist, ref)
    monkeypatch.setattr(mod, "_CHUNK", 1 << 40)
    whole = create_metric(name, **options)(dist, ref)
    torch.testing.assert_close(rows, whole, rtol=1e-12, atol=0)


def _grating(angle: float, size: int = 128, period: float = 8.0) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    phase = 2 * math.pi / period * (xx * math.cos(angle) + yy * math.sin(angle))
    return (128 + 50 * torch.cos(phase)).double()[None, None]


def test_spyr_orientation_and_sizes():
    hi0, bands, lo = build_spyr(_grating(0.0), 3)
    assert hi0.shape == (1, 1, 128, 128) and lo.shape == (1, 1, 16, 16)
    assert [b.shape[-1] for b in bands] == [128, 64, 32] and bands[0].shape[2] == 6
    energy = (bands[1] ** 2).mean((-2, -1))[0, 0]  # level 2 holds period 8
    assert energy.argmax() == 0 and energy[3] < 1e-6 * energy[0]  # band 1: horizontal derivative
    _, bands, _ = build_spyr(_grating(math.pi / 2), 3)
    assert (bands[1] ** 2).mean((-2, -1))[0, 0].argmax() == 3
    with pytest.raises(IQAError, match="levels"):
        build_spyr(torch.rand(1, 1, 40, 40), 4)


def test_scf_bands_are_analytic_and_oriented():
    for angle, band in ((0.0, 0), (math.pi / 2, 4)):
        b = scf_bands(_grating(angle), 3, 7, level=2)[0, 0]  # (8, 64, 64)
        assert b.is_complex() and b.shape == (8, 64, 64)
        energy = (b.abs() ** 2).mean((-2, -1))
        assert energy.argmax() == band
        mag = b[band].abs()
        assert (mag.max() - mag.min()) / mag.mean() < 1e-4  # one-sided spectrum: constant envelope


def test_ms_ssim_odd_size_downsampling():
    """msssim.m's imfilter(ones(2)/4, 'symmetric', 'same') on odd sizes: the last row/column pairs with itself."""
    from iqarena.metrics.ms_ssim import _half

    x = torch.arange(35, dtype=torch.float64).view(1, 1, 5, 7)
    xp = torch.cat([x, x[..., -1:, :]], -2)
    xp = torch.cat([xp, xp[..., -1:]], -1)
    want = (xp[..., 0::2, 0::2] + xp[..., 1::2, 0::2] + xp[..., 0::2, 1::2] + xp[..., 1::2, 1::2]) / 4
    assert torch.equal(_half(x), want)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("name", NAMES)
def test_cuda_matches_cpu(name, pairs):
    dist, ref = (downscale(t[:2], 2) for t in pairs)
    cpu = create_metric(name)(dist, ref)
    gpu = create_metric(name, device="cuda")(dist.cuda(), ref.cuda()).cpu()
    assert torch.allclose(cpu, gpu, rtol=1e-4, atol=1e-5)
