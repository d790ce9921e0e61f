"""Classic full-reference baselines: uqi, nqm, vsnr, iw_ssim, gsm, rfsim.

Reference values: no published values for reproducible real images were found for these metrics, so
the values below were computed by running the authors' own MATLAB code in GNU Octave 7.3 on the
bundled images: img_qi.m (UQI, on MATLAB-rgb2gray input); MeTriX MuX 1.1 metrix_mux(ref, dist, 'NQM')
and 'VSNR' (nqm_modified.m; vsnr_modified.m with Chandler's imdwt.cpp compiled as its MEX DWT);
iwssim.m with matlabPyrTools' buildLpyr and its compiled corrDn/upConv MEX files; RFSIM.m with
MATLAB's edge.m 'canny' path (R2011+) transcribed for Octave, whose own edge/bwselect differ from
MATLAB's. GSM's code (GSM.m) is not publicly retrievable: gsm is tested for its properties only.
"""

from __future__ import annotations

import pytest
import torch

from iqarena.errors import IQAError
from iqarena.metrics import create_metric, get_info
from iqarena.ops.color import rgb2gray

from properties import DISTORTIONS, downscale, monotone

METRICS = ["uqi", "nqm", "vsnr", "iw_ssim", "gsm", "rfsim"]

# Authors' code in GNU Octave, pairs I03, I04, I06, I08, I19 (dist, ref) of tests/conftest.py.
ORIGINAL_CODE = {
    "uqi": [0.0818582559664, 0.992060771334, 0.967024156765, 0.966141264009, 0.40785742397],
    "nqm": [5.66704908371, 38.6212043337, 44.0403474951, 12.78711067, 15.4093872272],
    "vsnr": [10.7733068039, 50.6225687825, 94.2941608195, 19.1421403406, 17.4408278239],
    "iw_ssim": [0.39163566733, 0.999592330656, 0.999868766008, 0.928639135095, 0.827125381538],
    "rfsim": [0.0703296447186, 0.991121633588, 0.994271221031, 0.527546147176, 0.269943700377],
}
# The same for the grey 512x512 goldhill pair (JPEG, original).
ORIGINAL_CODE_GOLDHILL = {"uqi": 0.496263746562, "nqm": 21.2538899048, "vsnr": 21.1044516054,
                          "iw_ssim": 0.886297251093, "rfsim": 0.349012177862}
# The same for the top-left 201 x 301 crop of pair I08: odd sizes (NQM's off-centre grid, VSNR's padding
# to 224 x 320, odd pyramid levels).
ORIGINAL_CODE_I08_CROP = {"uqi": 0.984773300197, "nqm": 12.0725274911, "vsnr": 15.0555388501,
                          "iw_ssim": 0.985133299867, "rfsim": 0.704627736136}
# Original code on I01 (TID2013 reference) against itself: VSNR takes its Weber-law branch, NQM is Inf.
ORIGINAL_CODE_I01_IDENTITY = {"uqi": 1.0, "nqm": float("inf"), "vsnr": 130.649672397, "iw_ssim": 1.0, "rfsim": 1.0}


@pytest.fixture(scope="module")
def batched(pairs):
    dist, ref = pairs
    with torch.no_grad():
        return {m: create_metric(m)(dist, ref) for m in METRICS}


@pytest.fixture(scope="module")
def small_i01(i01):
    """I01 at half size (192 x 256, on the 8-bit grid), to keep the property checks quick."""
    return torch.floor(downscale(i01) * 255 + 0.5) / 255


@pytest.fixture(scope="module")
def i01_scores(small_i01):
    """Scores of the half-size I01 with each distortion at its four growing levels, then of I01 itself."""
    imgs = [fn(small_i01, level) for fn, levels in DISTORTIONS.values() for level in levels]
    dist = torch.floor(torch.cat(imgs + [small_i01]) * 255 + 0.5) / 255
    ref = small_i01.expand_as(dist)
    with torch.no_grad():
        return {m: create_metric(m)(dist, ref) for m in METRICS}


@pytest.mark.parametrize("metric", sorted(ORIGINAL_CODE))
def test_matches_original_code_on_calibration_pairs(batched, metric):
    ours = batched[metric].double()
    ref = torch.tensor(ORIGINAL_CODE[metric], dtype=torch.float64)
    assert torch.allclose(ours, ref, rtol=2e-6, atol=0), f"{metric}: {ours.tolist()} vs {ref.tolist()}"


@pytest.mark.parametrize("metric", sorted(ORIGINAL_CODE_GOLDHILL))
def test_matches_original_code_on_grey_goldhill(goldhill, metric):
    dist, ref = goldhill
    with torch.no_grad():
        v = create_metric(metric)(dist, ref).item()
    assert v == pytest.approx(ORIGINAL_CODE_GOLDHILL[metric], rel=2e-6)


@pytest.mark.parametrize("metric", sorted(ORIGINAL_CODE_I08_CROP))
def test_matches_original_code_on_odd_sizes(pairs, metric):
    dist, ref = pairs
    with torch.no_grad():
        v = create_metric(metric)(dist[3:4, :, :201, :301], ref[3:4, :, :201, :301]).item()
    assert v == pytest.approx(ORIGINAL_CODE_I08_CROP[metric], rel=2e-6)


@pytest.mark.parametrize("metric", ["uqi", "nqm", "iw_ssim", "rfsim"])
def test_identity_gives_the_original_codes_value(i01_scores, metric):
    assert i01_scores[metric][-1].item() == pytest.approx(ORIGINAL_CODE_I01_IDENTITY[metric], rel=2e-6)


def test_vsnr_identity_and_subthreshold_convention(i01):
    # vsnr.m on an image and itself: the error image (err = dst - src + mean) is flat, but its mean
    # luminance differs from the source's by more than 1 %, so vsnr.m takes its Weber-law branch.
    assert create_metric("vsnr")(i01, i01).item() == pytest.approx(ORIGINAL_CODE_I01_IDENTITY["vsnr"], rel=2e-6)
    # A low-contrast image against itself, or with one pixel changed by one grey level: vsnr.m returns
    # Inf for both (checked in Octave: distortion below threshold, mean luminance change under 1 %);
    # we return subthreshold_db (default 2000 dB) unless asked for Inf.
    yy, xx = torch.meshgrid(torch.arange(128.0), torch.arange(128.0), indexing="ij")
    ref = (128 + torch.round(5 * torch.sin(xx / 10) * torch.cos(yy / 13))) / 255
    dist = ref.clone()
    dist[9, 9] += 1 / 255
    ref, dist = ref[None, None], dist[None, None]
    out = create_metric("vsnr")(torch.cat([dist, ref]), torch.cat([ref, ref]))
    assert out.tolist() == [2000.0, 2000.0]
    assert create_metric("vsnr", subthreshold_db=float("inf"))(dist, ref).item() == float("inf")


@pytest.mark.parametrize("metric", METRICS)
def test_identity_scores_best(i01_scores, metric):  # nqm: +inf, as in the original
    s = i01_scores[metric]
    assert torch.isfinite(s[:-1]).all()
    assert (s[-1] > s[:-1]).all(), f"{metric}: identity {s[-1].item()} not above {s[:-1].tolist()}"


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("distortion", list(DISTORTIONS))
def test_monotone_in_distortion(i01_scores, metric, distortion):
    k = list(DISTORTIONS).index(distortion)
    scores = i01_scores[metric][4 * k: 4 * k + 4].tolist()
    assert monotone(scores, get_info(metric).higher_better), f"{metric} {distortion}: {scores}"


@pytest.mark.parametrize("metric", METRICS)
def test_batch_equals_one_by_one(pairs, batched, metric):
    dist, ref = pairs
    m = create_metric(metric)
    with torch.no_grad():
        single = m(dist[3:4], ref[3:4])
    assert torch.allclose(single, batched[metric][3:4], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("metric", ["uqi", "iw_ssim", "gsm", "rfsim"])
def test_grey_input_equals_rgb2gray_of_colour(pairs, batched, metric):
    dist, ref = pairs
    with torch.no_grad():
        grey = create_metric(metric)(rgb2gray(dist[:2]), rgb2gray(ref[:2]))
    assert torch.allclose(grey, batched[metric][:2], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("metric", ["nqm", "vsnr"])
def test_metrix_colour_options(pairs, batched, metric):
    dist, ref = pairs
    with torch.no_grad():
        grey_in = create_metric(metric)(rgb2gray(dist[:2]), rgb2gray(ref[:2]))
        grey_opt = create_metric(metric, colour="gray")(dist[:2], ref[:2])
    # colour='gray' is MATLAB rgb2gray, the same as giving grey input; the default MeTriX MuX luma
    # (0.299, 0.587, 0.114, unrounded) is a different image, so the scores differ.
    assert torch.allclose(grey_in, grey_opt, rtol=1e-6)
    assert torch.isfinite(grey_opt).all()
    assert not torch.allclose(grey_opt, batched[metric][:2], rtol=1e-4)


def test_vsnr_pads_sizes_that_are_not_multiples_of_32(i01):
    x = i01[..., :200, :300]
    y = torch.flip(x, dims=(-1,)) * 0.9 + 0.05
    v = create_metric("vsnr")(y, x)
    assert torch.isfinite(v).all() and v.item() > 0


@pytest.mark.parametrize("metric", ["uqi", "iw_ssim", "gsm"])
def test_gradients_finite(i01, metric):
    ref = rgb2gray(i01)[..., :256, :256]
    dist = (ref + 0.03 * torch.randn(ref.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    dist.requires_grad_(True)
    create_metric(metric)(dist, ref).sum().backward()
    assert torch.isfinite(dist.grad).all() and dist.grad.abs().sum() > 0


def test_clear_errors(i01):
    with pytest.raises(IQAError, match="colour"):
        create_metric("vsnr", colour="rgb")(i01, i01)
    with pytest.raises(IQAError, match="colour"):
        create_metric("nqm", colour="lab")(i01, i01)
    small = i01[..., :100, :100]
    with pytest.raises(IQAError, match="at least 176"):
        create_metric("iw_ssim")(small, small)
    with pytest.raises(IQAError, match="at least 8x8"):
        create_metric("uqi")(small[..., :6, :6], small[..., :6, :6])


def test_uqi_flat_block_cases():
    # img_qi.m: two equal flat blocks score 1; flat blocks of different means score 2 m1 m2 / (m1^2 + m2^2).
    a = torch.full((1, 1, 8, 8), 100 / 255)
    b = torch.full((1, 1, 8, 8), 50 / 255)
    m = create_metric("uqi")
    assert m(a, a).item() == 1.0
    assert m(b, a).item() == pytest.approx(2 * 100 * 50 / (100 ** 2 + 50 ** 2), rel=1e-7)
    z = torch.zeros(1, 1, 8, 8)
    assert m(z, z).item() == 1.0
