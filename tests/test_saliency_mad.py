"""SR-SIM, VSI and MAD against the authors' code, their properties, and MAD's fast path against a plain one.

Reference values:
- Published MATLAB values of SR_SIM.m (piq's test suite, "from matlab code"): goldhill vs its JPEG
  0.94652679, TID2013 I01 vs i01_01_5 0.9659730.
- The authors' code run in GNU Octave 7.3 on the five bundled TID2013 pairs: SR_SIM.m and VSI.m as
  published, with imresize replaced by a MATLAB-semantics imresize written for the run (Octave's own
  imresize does not antialias; with it SR_SIM.m gives 0.946526792 and 0.965973068 on the two published
  pairs above); MAD_index.m (2011 release) with its MEX files ical_std.c and ical_stat.c compiled by
  mkoctfile --mex.
- MAD's block statistics and both of its indices against a plain loop-by-block NumPy transcription of
  MAD_index.m, ical_std.c and ical_stat.c (below) on a crop with odd sizes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from iqarena.errors import IQAError
from iqarena.metrics import create_metric, get_info
from iqarena.metrics.mad import _grey255, hi_index, ical_stat, ical_std, lo_index, mad, mad_index
from iqarena.metrics.srsim import srsim
from iqarena.metrics.vsi import vsi
from iqarena.ops.color import rgb2gray
from iqarena.io import read_image

from properties import DISTORTIONS, monotone

EXTRA = Path(__file__).parent / "data" / "extra"

# Authors' code in GNU Octave, pairs I03, I04, I06, I08, I19 (dist, ref) of tests/conftest.py.
ORIGINAL_CODE = {
    "srsim": [0.731300969771174, 0.999928170903505, 0.999961470406439, 0.971303111294536, 0.912863048067647],
    "vsi": [0.924424188163531, 0.949691487910894, 0.987605813633551, 0.953862061503818, 0.927202585239669],
    "mad": [152.717736895211, 0.0, 0.0, 88.073277001602, 113.850311298639],
}
ORIGINAL_MAD_HI = [204110.410528369, 0.0, 0.0, 277868.412620053, 32849.6918245036]
ORIGINAL_MAD_LO = [6.49214193586882, 0.323625446463191, 0.197449084817752, 2.95029857886274, 4.88107685573714]
# Absolute agreement reached in float64 (FFT libraries differ: FFTW in Octave, pocketfft here).
TOLERANCE = {"srsim": 3e-8, "vsi": 1e-8}
FUNCTIONS = {"srsim": srsim, "vsi": vsi, "mad": mad}


@pytest.fixture(scope="module")
def scores64(pairs):
    """Scores of the five pairs in float64 (batch of 5), MAD with its two indices."""
    dist, ref = (x.double() for x in pairs)
    with torch.no_grad():
        out = {name: FUNCTIONS[name](dist, ref) for name in ("srsim", "vsi")}
        out["mad"], out["mad_hi"], out["mad_lo"] = mad_index(dist, ref)
    return out


def _pair(names):
    return tuple(read_image(EXTRA / n)[None].double() for n in names)


# ---- reference values --------------------------------------------------------------------------

def test_srsim_published_matlab_values():
    dist, ref = _pair(("goldhill_jpeg.gif", "goldhill.gif"))  # grey
    assert abs(srsim(dist, ref).item() - 0.94652679) <= 5e-9
    dist, ref = _pair(("i01_01_5.png", "I01.png"))  # colour
    # printed with 7 decimals, apparently truncated: the Octave run of SR_SIM.m gives 0.965973068 too
    assert abs(srsim(dist, ref).item() - 0.9659730) <= 1e-7


@pytest.mark.parametrize("name", ["srsim", "vsi"])
def test_original_code_values(name, scores64, pairs):
    got = scores64[name]
    assert got.dtype == torch.float64
    for g, want in zip(got.tolist(), ORIGINAL_CODE[name]):
        assert abs(g - want) <= TOLERANCE[name], (g, want)
    # float32 input: float32 output, within a few of its units
    f32 = FUNCTIONS[name](*pairs)
    assert f32.dtype == torch.float32
    assert torch.allclose(f32.double(), torch.tensor(ORIGINAL_CODE[name], dtype=torch.float64), atol=2e-7, rtol=0)


def test_vsi_original_code_value_on_i01():
    dist, ref = _pair(("i01_01_5.png", "I01.png"))
    assert abs(vsi(dist, ref).item() - 0.963951240010514) <= 1e-8


def test_mad_original_code_values(scores64, pairs):
    got = scores64["mad"].tolist()
    for g, want in zip(got, ORIGINAL_CODE["mad"]):
        assert abs(g - want) <= 1e-9 * max(want, 1), (g, want)
    assert np.allclose(scores64["mad_hi"].tolist(), ORIGINAL_MAD_HI, rtol=1e-10, atol=0)
    assert np.allclose(scores64["mad_lo"].tolist(), ORIGINAL_MAD_LO, rtol=1e-10, atol=0)
    # float32 in, float32 out (through the registry): the same value rounded
    dist, ref = pairs
    one = create_metric("mad")(dist[:1], ref[:1])
    assert one.dtype == torch.float32 and abs(one.item() - ORIGINAL_CODE["mad"][0]) <= 2e-5


# ---- MAD: fast path == plain transcription of the original code ----------------------------------

def _ical_std_loop(x, y):
    """ical_std.c: x error, y reference; outputs full-size maps, zeros where no block writes."""
    rows, cols = x.shape
    std, mod, mean, tmp = (np.zeros((rows, cols)) for _ in range(4))
    for i in range(0, cols - 15, 4):
        for j in range(0, rows - 15, 4):
            bx, by = x[j:j + 16, i:i + 16], y[j:j + 16, i:i + 16]
            mean[j:j + 4, i:i + 4] = by.sum() / 256.0
            std[j:j + 4, i:i + 4] = np.sqrt(((bx - bx.sum() / 256.0) ** 2).sum() / 255.0)
            sub = y[j:j + 8, i:i + 8]
            tmp[j:j + 4, i:i + 4] = np.sqrt(((sub - sub.sum() / 64.0) ** 2).sum() / 63.0)
    for i in range(0, cols - 15, 4):
        for j in range(0, rows - 15, 4):
            m = tmp[j, i]
            for ib in (i, i + 5):
                for jb in (j, j + 5):
                    if ib < cols - 15 and jb < rows - 15 and m > tmp[jb, ib]:
                        m = tmp[jb, ib]
            mod[j:j + 4, i:i + 4] = m
    return std, mod, mean


def _ical_stat_loop(x):
    """ical_stat.c: std, skewness, kurtosis of 16 x 16 blocks at stride 4, full-size maps."""
    rows, cols = x.shape
    out = [np.zeros((rows, cols)) for _ in range(3)]
    for i in range(0, cols - 15, 4):
        for j in range(0, rows - 15, 4):
            d = x[j:j + 16, i:i + 16] - x[j:j + 16, i:i + 16].sum() / 256.0
            s2 = (d * d).sum()
            stmp = np.sqrt(s2 / 256.0)
            skw = (d ** 3).sum() / 256.0 / stmp ** 3 if stmp != 0 else 0.0
            krt = (d ** 4).sum() / 256.0 / stmp ** 4 if stmp != 0 else 0.0
            for o, v in zip(out, (np.sqrt(s2 / 255.0), skw, krt)):
                o[j:j + 4, i:i + 4] = v
    return out


def _hi_index_plain(ref, dst):
    """hi_index of MAD_index.m on uint8-valued arrays (LUT(img + 1) saturating at 255)."""
    lut = 0.02874 * np.arange(256.0) ** (2.2 / 3)
    r_l, d_l = lut[np.minimum(ref + 1, 255).astype(int) - 1], lut[np.minimum(dst + 1, 255).astype(int) - 1]
    rows, cols = ref.shape
    xp, yp = np.meshgrid(np.arange(rows) - rows / 2 + 0.5, np.arange(cols) - cols / 2 + 0.5)
    plane = (xp + 1j * yp) / cols * 2 * 32
    rad = np.abs(plane) / ((1 - 0.7) / 2 * np.cos(4 * np.angle(plane)) + (1 + 0.7) / 2)
    csf = 2.6 * (0.0192 + 0.114 * rad) * np.exp(-(0.114 * rad) ** 1.1)
    csf[rad < 7.8909] = 0.9809
    csf = csf.T

    def filt(a):
        return np.real(np.fft.ifft2(np.fft.ifftshift(np.fft.fftshift(np.fft.fft2(a)) * csf)))

    r_f, d_f = filt(r_l), filt(d_l)
    std2, std1, m1 = _ical_std_loop(d_f - r_f, r_f)
    with np.errstate(divide="ignore", invalid="ignore"):
        ci_ref, ci_dst = np.log(std1 / m1), np.log(std2 / m1)
    ci_dst[m1 < 0.5] = -np.inf
    msk = np.zeros_like(ci_dst)
    with np.errstate(invalid="ignore"):
        idx1 = (ci_ref > -5) & (ci_dst > ci_ref)
        idx2 = (ci_ref <= -5) & (ci_dst > -5)
    msk[idx1] = ci_dst[idx1] - ci_ref[idx1]
    msk[idx2] = ci_dst[idx2] + 5
    padded = np.pad((ref - dst) ** 2, ((7, 8), (7, 8)), mode="symmetric")
    lmse = sum(padded[a:a + rows, b:b + cols] for a in range(16) for b in range(16)) / 256.0
    mp = (msk * lmse)[16:-17, 16:-17]
    return np.sqrt((mp ** 2).mean()) * 200


def _lo_index_plain(ref, dst):
    """lo_index of MAD_index.m with gaborconvolve (2011) and ical_stat."""
    rows, cols = ref.shape
    x = np.ones((rows, 1)) * (np.arange(cols) - cols / 2) / (cols / 2)
    y = (np.arange(rows) - rows / 2)[:, None] * np.ones((1, cols)) / (rows / 2)
    radius = np.sqrt(x ** 2 + y ** 2)
    cr, cc = int(np.floor(rows / 2 + 1.5)) - 1, int(np.floor(cols / 2 + 1.5)) - 1
    radius[cr, cc] = 1
    theta = np.arctan2(-y, x)
    weights = np.array([0.5, 0.75, 1, 5, 6]) / 13.25
    mp = np.zeros((rows, cols))
    spectra = np.fft.fft2(ref), np.fft.fft2(dst)
    for s in range(5):
        lg = np.exp((np.log(radius) - np.log(2.0 / (3 * 3 ** s))) ** 2 / -(2 * np.log(0.55) ** 2))
        lg[cr, cc] = 0
        for o in range(4):
            a = o * np.pi / 4
            dtheta = np.abs(np.arctan2(np.sin(theta) * np.cos(a) - np.cos(theta) * np.sin(a),
                                       np.cos(theta) * np.cos(a) + np.sin(theta) * np.sin(a)))
            filt = np.fft.fftshift(lg * np.exp(-dtheta ** 2 / (2 * (np.pi / 4 / 1.5) ** 2)))
            sr, sk_r, kr = _ical_stat_loop(np.abs(np.fft.ifft2(spectra[0] * filt)))
            sd, sk_d, kd = _ical_stat_loop(np.abs(np.fft.ifft2(spectra[1] * filt)))
            mp += weights[s] * (np.abs(sr - sd) + 2 * np.abs(sk_r - sk_d) + np.abs(kr - kd))
    mp = mp[16:-17, 16:-17]
    return np.sqrt((mp ** 2).mean())


@pytest.fixture(scope="module")
def crop(pairs):
    """Grey I03 (dist, ref) cropped to 61 x 82 (odd and even sizes, partial last blocks), 0..255."""
    dist, ref = pairs
    sl = (slice(0, 1), slice(None), slice(37, 98), slice(50, 132))
    return _grey255(dist[sl]), _grey255(ref[sl])


def _to_full(grid, h, w):
    out = np.zeros((h, w))
    up = np.kron(grid, np.ones((4, 4)))
    out[: up.shape[0], : up.shape[1]] = up
    return out


def test_mad_block_statistics_equal_loops(crop):
    d, r = crop
    h, w = r.shape[-2:]
    rng = np.random.default_rng(0)
    # magnitudes with a large mean and small spread (as in coarse Gabor bands) stress the moments
    x = 500 + np.abs(rng.normal(0, 1, (h, w))) * np.linspace(0.01, 3, w)
    for got, want in zip(ical_stat(torch.from_numpy(x)), _ical_stat_loop(x)):
        assert np.allclose(_to_full(got.numpy(), h, w), want, rtol=1e-9, atol=1e-12)
    err, ref = (d - r)[0, 0].numpy(), r[0, 0].numpy()
    got = ical_std(torch.from_numpy(err), torch.from_numpy(ref))
    for g, want in zip(got, _ical_std_loop(err, ref)):
        assert np.allclose(_to_full(g.numpy(), h, w), want, rtol=1e-12, atol=1e-12)


def test_mad_indices_equal_plain_transcription(crop):
    d, r = crop
    hi, lo = hi_index(r, d).item(), lo_index(r, d).item()
    assert hi > 0 and lo > 0
    rn, dn = r[0, 0].numpy(), d[0, 0].numpy()
    assert hi == pytest.approx(_hi_index_plain(rn, dn), rel=1e-12)
    assert lo == pytest.approx(_lo_index_plain(rn, dn), rel=1e-12)


# ---- properties ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["srsim", "vsi", "mad"])
def test_identity_gives_best_score(name, pairs):
    ref = pairs[1][:1] if name != "mad" else pairs[1][:1, :, 96:288, 128:384]
    s = create_metric(name)(ref, ref)
    best = 0.0 if name == "mad" else 1.0
    assert torch.allclose(s, torch.full_like(s, best), atol=1e-7, rtol=0), s


@pytest.mark.parametrize("name", ["srsim", "vsi", "mad"])
@pytest.mark.parametrize("distortion", list(DISTORTIONS))
def test_monotone_in_distortion(name, distortion, i01):
    fn, levels = DISTORTIONS[distortion]
    x = i01 if name != "mad" else i01[..., 96:288, 128:384]  # MAD on the 192 x 256 centre, for time
    dist = torch.cat([fn(x, level) for level in levels])
    info = get_info(name)
    with torch.no_grad():
        scores = create_metric(name)(dist, x.expand_as(dist)).tolist()
    assert monotone(scores, info.higher_better), scores


@pytest.mark.parametrize("name", ["srsim", "vsi", "mad"])
def test_batch_equals_one_by_one(name, pairs, scores64):
    dist, ref = (x.double() for x in pairs)
    fn = FUNCTIONS[name]
    for i in ([3] if name == "mad" else [0, 3]):
        one = fn(dist[i:i + 1], ref[i:i + 1])
        assert torch.allclose(one, scores64[name][i:i + 1], rtol=1e-12, atol=1e-12)


def test_grey_and_colour_input(pairs):
    dist, ref = (x[:1, :, 100:164, 200:280].double() for x in pairs)
    gd, gr = rgb2gray(dist), rgb2gray(ref)
    # SR-SIM and VSI on grey = on the grey image replicated to RGB (0.299 + 0.587 + 0.114 = 1)
    for fn in (srsim, vsi):
        s_grey = fn(gd, gr)
        assert torch.allclose(s_grey, fn(gd.expand(-1, 3, -1, -1), gr.expand(-1, 3, -1, -1)), atol=1e-12)
        assert ((s_grey > 0) & (s_grey < 1)).all()
    # MAD converts colour with rgb2gray itself
    assert torch.allclose(mad(dist, ref), mad(gd, gr), rtol=1e-12, atol=0)


@pytest.mark.parametrize("name", ["srsim", "vsi"])
def test_gradients_finite(name, pairs):
    dist, ref = (x[:1, :, :96, :128].double() for x in pairs)
    dist = dist.clone().requires_grad_(True)
    FUNCTIONS[name](dist, ref).sum().backward()
    assert torch.isfinite(dist.grad).all() and dist.grad.abs().sum() > 0


def test_registry_entries():
    assert get_info("srsim").higher_better and get_info("vsi").higher_better
    assert not get_info("mad").higher_better and get_info("mad").kind == "fr"


@pytest.mark.parametrize("name,size", [("srsim", 6), ("vsi", 6), ("mad", 30)])
def test_too_small_images_raise(name, size):
    x = torch.rand(1, 3, size, size + 3)
    with pytest.raises(IQAError, match="at least"):
        create_metric(name)(x, x)
