"""FSIM, FSIMc, GMSD, MS-GMSD, NLPD: official values, properties, gradients, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iqarena import IQAError, create_metric
from iqarena.metrics.fsim import box_decimate, fsim
from iqarena.metrics.gmsd import gmsd, ms_gmsd, std2
from iqarena.metrics.nlpd import laplacian_pyramid, nlpd
from iqarena.ops.filters import conv2
from iqarena.ops.phase import matlab_median

from conftest import assert_printed_precision, official
from properties import DISTORTIONS, monotone

NAMES = ["fsim", "fsimc", "gmsd", "ms_gmsd", "nlpd"]


# ---- official values --------------------------------------------------------------------------------

def test_fsimc_official(pairs):
    dist, ref = pairs
    assert_printed_precision(create_metric("fsimc")(dist, ref), "fsimc")


@pytest.mark.parametrize("name", ["gmsd", "nlpd"])
def test_fifteen_decimal_official(pairs, name):
    """Printed with 15 decimals; float64 input gives float64 scores within 1e-15 of them."""
    dist, ref = pairs
    scores = create_metric(name)(dist.double(), ref.double())
    assert scores.dtype == torch.float64
    assert_printed_precision(scores, name)
    for got, (want, _) in zip(scores.tolist(), official(name)):
        assert abs(got - want) <= 1e-15, (name, got, want)


def test_float32_input_is_close_to_official(pairs):
    dist, ref = pairs
    for name in ("gmsd", "nlpd"):
        got = create_metric(name)(dist, ref)
        assert got.dtype == torch.float32
        want = torch.tensor([v for v, _ in official(name)])
        assert torch.allclose(got, want, rtol=2e-6, atol=1e-9), name


# The original code (FeatureSIM.m, GMSD.m, NLP_dist.m) run in GNU Octave 7.3 on the bundled 8-bit images:
# FSIM (FeatureSIM's first output, on RGB) for the five pairs, and all four scores for the 201 x 301
# top-left crops (odd sizes, no FSIM downsampling) and for the grey goldhill JPEG pair (512 x 512).
OCTAVE_FSIM = (0.69729257119772659, 0.99982036904358684, 0.99990980474972213, 0.9586173934331208,
               0.82976409025538778)
OCTAVE_CROP = {
    "fsim": (0.65920361840131636, 0.99930873749904614, 0.9998170095169423, 0.97808700928375392, 0.73726334803233073),
    "fsimc": (0.65345000431927436, 0.97081509027990998, 0.99149836033875782, 0.97707438926851653, 0.7302663275299528),
    "gmsd": (0.25554794298393235, 0.00044799611651084062, 0.00055015209558841765, 0.073455884776836025,
             0.19530137006072665),
    "nlpd": (0.64648767835020415, 0.020343734192262129, 0.015958709088610103, 0.23129109756925428, 0.42808060758485184),
}
OCTAVE_GOLDHILL = {"fsim": 0.8969129517541311, "gmsd": 0.13801258714179829, "nlpd": 0.32295994609244816}


def _exact(x: torch.Tensor) -> torch.Tensor:
    """8-bit images exactly as MATLAB holds them (k / 255 in float64; float32 k / 255 is off by 6e-8)."""
    return torch.round(x.double() * 255) / 255


def test_fsim_matches_original_code_run_in_octave(pairs):
    dist, ref = map(_exact, pairs)
    assert torch.allclose(fsim(dist, ref), torch.tensor(OCTAVE_FSIM, dtype=torch.float64), rtol=1e-12, atol=0)


@pytest.mark.parametrize("name", list(OCTAVE_CROP))
def test_odd_size_crop_matches_original_code(pairs, name):
    dist, ref = (_exact(t[..., :201, :301]) for t in pairs)
    got = create_metric(name)(dist, ref)
    assert torch.allclose(got, torch.tensor(OCTAVE_CROP[name], dtype=torch.float64), rtol=1e-12, atol=0)


@pytest.mark.parametrize("name", list(OCTAVE_GOLDHILL))
def test_grey_input_matches_original_code(goldhill, name):
    jpeg, orig = map(_exact, goldhill)
    got = create_metric(name)(jpeg, orig).item()
    assert abs(got - OCTAVE_GOLDHILL[name]) <= 1e-12 * OCTAVE_GOLDHILL[name]


def test_std2_sums_in_matlab_order():
    """Column-major order with four interleaved partial sums changes I08 at 1e-14; check the arithmetic."""
    q = torch.rand(2, 1, 7, 5, dtype=torch.float64)
    want = torch.from_numpy(np.array([np.std(m[0].numpy(), ddof=1) for m in q]))
    assert torch.allclose(std2(q), want, rtol=1e-14, atol=0)


# ---- conventions of the original code ---------------------------------------------------------------

def test_box_decimate_equals_conv2_same_then_sampling():
    """ops.filters.block_mean's strided means (inner blocks as views, edge blocks gathered) against the dense
    conv2, on ragged sizes and on images smaller than the block."""
    for shape in ((11, 14), (3, 5), (16, 9)):
        x = torch.rand(2, 1, *shape, dtype=torch.float64, requires_grad=True)
        for f in (2, 3, 4, 5):
            box = torch.full((f, f), 1.0 / f ** 2, dtype=torch.float64)
            want = conv2(x, box, "same")[..., ::f, ::f]
            got = box_decimate(x, f)
            assert got.shape == want.shape
            torch.testing.assert_close(got, want, rtol=0, atol=1e-14)
            g_want, = torch.autograd.grad(want.sum(), x)
            g_got, = torch.autograd.grad(got.sum(), x)
            torch.testing.assert_close(g_got, g_want, rtol=0, atol=1e-14)


def test_matlab_median_even_and_odd():
    for n in (8, 9, 50):
        x = torch.randint(0, 4, (3, n)).double()
        assert torch.equal(matlab_median(x), torch.from_numpy(np.median(x.numpy(), axis=-1)))


def test_laplacian_pyramid_reconstructs_and_keeps_odd_sizes():
    x = torch.rand(1, 1, 45, 37, dtype=torch.float64)
    bands = laplacian_pyramid(x)
    assert [tuple(b.shape[-2:]) for b in bands] == [(45, 37), (23, 19), (12, 10), (6, 5), (3, 3), (2, 2)]
    assert bands[0].abs().mean() > 1e-3


def test_fsim_grey_path_uses_the_image_itself(pairs):
    """FeatureSIM.m's grey branch takes the image as Y: RGB FSIM == grey FSIM of Y = .299 R + .587 G + .114 B."""
    dist, ref = pairs[0][:2, :, :192, :256].double(), pairs[1][:2, :, :192, :256].double()
    w = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64).view(1, 3, 1, 1)
    y_d, y_r = (dist * w).sum(1, keepdim=True), (ref * w).sum(1, keepdim=True)
    assert torch.allclose(fsim(dist, ref), fsim(y_d, y_r), atol=1e-12)
    assert torch.allclose(fsim(y_d, y_r, chromatic=True), fsim(y_d, y_r), atol=0)  # FSIMc = FSIM on grey


def test_chromatic_terms_matter(pairs):
    dist, ref = pairs[0][:2], pairs[1][:2]
    assert not torch.allclose(create_metric("fsim")(dist, ref), create_metric("fsimc")(dist, ref), atol=1e-4)
    assert not torch.allclose(ms_gmsd(dist, ref), ms_gmsd(dist, ref, chromatic=True), atol=1e-4)


def test_quantize_false_differs_only_slightly(pairs):
    dist, ref = pairs[0][:1].double(), pairs[1][:1].double()
    for fn in (gmsd, nlpd):
        a, b = fn(dist, ref), fn(dist, ref, quantize=False)
        assert 0 < (a - b).abs().item() < 0.01 * a.item()


# ---- properties -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_identity_is_best(pairs, name):
    m = create_metric(name)
    ref = pairs[1][:2]
    best = 1.0 if m.info.higher_better else 0.0
    assert torch.allclose(m(ref, ref), torch.full((2,), best), atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("kind", list(DISTORTIONS))
def test_monotone_on_real_image(i01, name, kind):
    fn, levels = DISTORTIONS[kind]
    m = create_metric(name)
    dist = torch.cat([fn(i01, lv) for lv in levels])
    scores = m(dist, i01.expand_as(dist)).tolist()
    assert monotone(scores, m.info.higher_better), (name, kind, scores)


@pytest.mark.parametrize("name", NAMES)
def test_batch_equals_one_by_one(pairs, name):
    m = create_metric(name)
    dist, ref = pairs[0][:3], pairs[1][:3]
    batch = m(dist, ref)
    single = torch.cat([m(dist[i:i + 1], ref[i:i + 1]) for i in range(len(dist))])
    assert batch.shape == (3,)
    assert torch.allclose(batch, single, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_grey_and_colour_input(goldhill, pairs, name):
    m = create_metric(name)
    jpeg, orig = goldhill
    grey = m(jpeg, orig)
    assert grey.shape == (1,) and torch.isfinite(grey).all()
    assert (grey < 1).all() if m.info.higher_better else (grey > 0).all()
    # a grey image given as three equal channels scores like the grey image (the 8-bit rgb2gray of equal
    # channels is the channel itself; the YIQ luminance is too, and the chroma is zero)
    grey3 = m(jpeg.expand(-1, 3, -1, -1), orig.expand(-1, 3, -1, -1))
    assert torch.allclose(grey, grey3, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name,options", [("fsim", {}), ("fsimc", {}), ("gmsd", {"quantize": False}),
                                          ("ms_gmsd", {"chromatic": True}), ("nlpd", {"quantize": False})])
def test_gradients_are_finite(pairs, name, options):
    dist = pairs[0][:2, :, :96, :128].clone().requires_grad_(True)
    ref = pairs[1][:2, :, :96, :128]
    m = create_metric(name, **options)
    m(dist, ref).sum().backward()
    assert torch.isfinite(dist.grad).all() and dist.grad.abs().sum() > 0
    same = ref.clone().requires_grad_(True)  # at identity (flat gradient regions, zero differences)
    m(same, ref).sum().backward()
    assert torch.isfinite(same.grad).all()


# ---- errors -----------------------------------------------------------------------------------------

def test_clear_errors(pairs):
    dist, ref = pairs
    with pytest.raises(IQAError, match="no option 'alpha'"):
        create_metric("gmsd", alpha=0.5)
    with pytest.raises(IQAError, match="differ in shape"):
        create_metric("fsim")(dist[:, :, :100], ref)
    with pytest.raises(IQAError, match="full-reference"):
        create_metric("nlpd")(dist)


@pytest.mark.parametrize("padding, before", [("zeros", 1), ("symmetric", 1), ("symmetric", 2)])
def test_block_mean_applies_the_pointwise_function_a_few_rows_at_a_time(padding, before, monkeypatch):
    """block_mean(x, pointwise=g) is block_mean(g(x)) whether g sees the whole image or one row of blocks."""
    from iqarena.ops import filters
    from iqarena.ops.color import rgb2gray
    x = torch.rand(2, 3, 23, 30, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    grey = lambda t: rgb2gray(t, scale=255)  # noqa: E731  (rounds to 8 bits: not linear)
    want = filters.block_mean(grey(x), 4, before, padding)
    monkeypatch.setattr(filters, "_POINTWISE_BLOCK", 1)
    got = filters.block_mean(x, 4, before, padding, pointwise=grey)
    assert got.shape == want.shape == (2, 1, 6, 8)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
