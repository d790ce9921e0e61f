"""Degenerate input (issue 16): every registered metric and model, on random sizes from 1x1 up, 1 and 3
channels, float32 and float64, constant, binary, extreme, noise and gradient images, alone and in batches
that mix them.

The invariant: a score that is finite, an ``IQAError`` (below the metric's ``min_size`` always the size
error), or a NaN/inf that the original code gives, with exactly one ``DegenerateInputWarning`` per call
that names the metric and a documented cause. Never another exception, never a NaN without a warning,
never a different answer for an image in a batch than alone (within the tolerances of the project's
batch tests). Hypothesis runs derandomized with a few examples per metric (fewer for the slow ones), so
the file takes well under a minute on two cores; ``IQARENA_FUZZ_EXAMPLES=200`` explores further.

Models whose parameter files are not here run on stand-in weights (random, seeded), like tests/test_deep.py.
"""

from __future__ import annotations

import math
import os
import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iqarena import backbones as B
from iqarena.errors import DegenerateInputWarning, IQAError
from iqarena.metrics import create_metric, get_info, is_available, list_metrics
from iqarena.metrics import dists as dists_mod
from iqarena.metrics import lpips as lpips_mod
from iqarena.metrics import pieapp as pieapp_mod
from iqarena.metrics import wadiqam as wadiqam_mod
from iqarena.weights import load_state_dict

# iqarena's own entries (not the ones other test files register at run time)
NAMES = [n for n in list_metrics() if get_info(n).target.__module__.startswith("iqarena.")]
SLOW = {"iw_ssim", "ms_ssim", "mad", "vif", "ifc", "niqe", "vsi", "vifp", "cw_ssim", "fsim", "fsimc", "rfsim",
        "pieapp", "dists", "lpips_vgg", "wadiqam_fr", "wadiqam_fr_live", "iqarena_nr", "iqarena_fr"}
UNTRAINED = {name: {"trained": False, "pretrained": False} for name in ("iqarena_nr", "iqarena_fr")}
BACKBONES = {"alexnet": B.AlexNet, "vgg16": B.VGG16, "squeezenet1_1": B.SqueezeNet11}
KINDS = ("constant", "black", "white", "binary", "extreme", "noise", "gradient")
#: examples per metric: bounded for the suite; IQARENA_FUZZ_EXAMPLES=200 explores further (minutes per metric)
EXPLORE = int(os.environ.get("IQARENA_FUZZ_EXAMPLES", "0"))


def _stand_in(name, fmt=None):
    """Seeded random weights for the parameter files that are not here; the shipped small files as they are."""
    if name in BACKBONES:
        with torch.device("meta"):
            net = BACKBONES[name](include_top=False)
        return B.seeded_state_dict({k: tuple(v.shape) for k, v in net.state_dict().items()}, 0)
    if name == "pieapp":
        torch.manual_seed(0)
        sd = pieapp_mod.PieAPPNet().state_dict()
        sd["fc2_weight.weight"] = sd["fc2_weight.weight"].abs()  # positive patch weights, as the published file
        sd["fc2_weight.bias"] = torch.tensor([0.1])
        return sd
    if str(name).startswith("wadiqam-fr"):
        torch.manual_seed(0)
        return wadiqam_mod.WaDIQaMFRNet().state_dict()
    return load_state_dict(name, fmt)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def metrics():
    """name -> built metric (stand-in weights where the published files are missing); built on first use."""
    built: dict = {}
    with pytest.MonkeyPatch.context() as mp:
        for mod in (lpips_mod, dists_mod, pieapp_mod, wadiqam_mod):
            mp.setattr(mod, "load_state_dict", _stand_in)

        def get(name):
            if name not in built:
                info = get_info(name)
                if name not in UNTRAINED and not is_available(info) and info.target.__module__ not in (
                        lpips_mod.__name__, dists_mod.__name__, pieapp_mod.__name__, wadiqam_mod.__name__):
                    pytest.skip(f"{name}: its parameter files are not here and it has no stand-in")
                built[name] = create_metric(name, **UNTRAINED.get(name, {}))
            return built[name]

        yield get


def image(kind: str, c: int, h: int, w: int, dtype: torch.dtype, g: torch.Generator) -> torch.Tensor:
    if kind == "constant":
        return torch.full((c, h, w), float(torch.rand((), generator=g)), dtype=dtype)
    if kind == "black":
        return torch.zeros(c, h, w, dtype=dtype)
    if kind == "white":
        return torch.ones(c, h, w, dtype=dtype)
    if kind == "binary":
        return (torch.rand(c, h, w, generator=g) > 0.5).to(dtype)
    if kind == "extreme":  # 0 and 1, a few values a hair inside them
        x = (torch.rand(c, h, w, generator=g) > 0.5).to(torch.float64)
        eps = torch.rand(c, h, w, generator=g, dtype=torch.float64) < 0.1
        return torch.where(eps, (x - 1e-7).abs(), x).to(dtype)
    if kind == "noise":
        return torch.rand(c, h, w, generator=g, dtype=torch.float64).to(dtype)
    ramp = torch.linspace(0, 1, w, dtype=torch.float64)[None, None].expand(c, h, w)  # gradient
    return ramp.contiguous().to(dtype)


@st.composite
def cases(draw, min_size: int, extra: int, batch: int, fr: bool):
    """(dist, ref or None): a batch of images of one random size, each of a random kind."""
    below = min_size > 1 and draw(st.integers(0, 4)) == 0
    if below:  # at least one side under the minimum
        h = draw(st.integers(1, min_size - 1))
        w = draw(st.integers(1, min_size + extra))
        h, w = (h, w) if draw(st.booleans()) else (w, h)
    else:
        h, w = draw(st.integers(min_size, min_size + extra)), draw(st.integers(min_size, min_size + extra))
    c = draw(st.sampled_from([1, 3]))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    n = draw(st.integers(1, batch))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2 ** 20)))
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=n, max_size=n))
    dist = torch.stack([image(k, c, h, w, dtype, g) for k in kinds])
    if not fr:
        return dist, None
    same = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    other = draw(st.lists(st.sampled_from(KINDS), min_size=n, max_size=n))
    ref = torch.stack([dist[i] if s else image(k, c, h, w, dtype, g) for i, (s, k) in enumerate(zip(same, other))])
    return dist, ref


def score(m, dist, ref):
    """Scores and the DegenerateInputWarnings of one call."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with torch.no_grad():
            out = m(dist, ref) if m.info.needs_ref else m(dist)
    return out, [w for w in caught if issubclass(w.category, DegenerateInputWarning)]


def check_invariant(m, dist, ref, deep: bool) -> None:
    info, (n, _, h, w) = m.info, dist.shape
    try:
        out, warned = score(m, dist, ref)
    except IQAError as exc:
        if min(h, w) < m.min_size:
            assert f"at least {m.min_size}x{m.min_size}" in str(exc), str(exc)
        return
    assert min(h, w) >= m.min_size, f"{info.name} scored a {h}x{w} image, below its minimum {m.min_size}"
    assert out.shape == (n,)
    bad = ~torch.isfinite(out)
    if bad.any():
        assert len(warned) == 1, f"{info.name}: {int(bad.sum())} NaN/inf score(s), {len(warned)} warnings"
        text = str(warned[0].message)
        assert text.startswith(info.name + " ")
        for v in out[bad].tolist():  # every NaN/inf the metric gives has a documented cause
            kind = "nan" if math.isnan(v) else "inf" if v > 0 else "-inf"
            assert kind in info.nonfinite, f"{info.name} gave {kind} with no documented cause ({dist.dtype}, {h}x{w})"
    else:
        assert not warned, f"{info.name}: a DegenerateInputWarning without NaN/inf scores"
    # never a different answer in a batch than alone; both the CPU chunking and the whole batch at once
    tol = {"atol": 1e-5, "rtol": 1e-5} if deep else {"atol": 1e-7, "rtol": 1e-5}
    alone = torch.cat([score(m, dist[i:i + 1], ref[i:i + 1] if ref is not None else None)[0] for i in range(n)])
    m.cpu_chunk = None
    try:
        whole, _ = score(m, dist, ref)
    finally:
        del m.cpu_chunk
    for got in (out, whole):
        torch.testing.assert_close(got, alone, equal_nan=True, **tol)


@pytest.mark.parametrize("name", NAMES)
def test_degenerate_input_never_crashes_or_fails_silently(metrics, name):
    m = metrics(name)
    slow = name in SLOW
    deep = get_info(name).module

    @settings(max_examples=EXPLORE or (4 if slow else 10), deadline=None, derandomize=not EXPLORE, database=None,
              suppress_health_check=list(HealthCheck))
    @given(cases(m.min_size, extra=3 if slow else 12, batch=2 if slow else 3, fr=m.info.needs_ref))
    def run(case):
        check_invariant(m, *case, deep=deep)

    run()


@pytest.mark.parametrize("name", NAMES)
def test_min_size_is_the_smallest_size_that_scores_noise(metrics, name):
    """At min_size (square, and either side longer) noise scores finite, at once for almost every metric (RFSIM's
    Canny mask can be empty on a few pixels of noise: a documented NaN); one pixel less is the size error."""
    m = metrics(name)
    s = m.min_size
    g = torch.Generator().manual_seed(0)
    for h, w in ((s, s), (s, s + 5), (s + 5, s)):
        for attempt in range(8 if name == "rfsim" else 1):
            d, r = torch.rand(1, 3, h, w, generator=g), torch.rand(1, 3, h, w, generator=g)
            out, warned = score(m, d, r if m.info.needs_ref else None)
            if torch.isfinite(out).all():
                assert not warned
                break
            assert len(warned) == 1 and "nan" in m.info.nonfinite
        else:
            raise AssertionError(f"{name}: no finite score on noise of {h}x{w}")
    if s > 1:
        d = torch.rand(1, 3, s - 1, s + 5, generator=g)
        with pytest.raises(IQAError, match=rf"{name} needs images of at least {s}x{s} pixels.*got {s - 1}x{s + 5}"):
            m(d, d) if m.info.needs_ref else m(d)


def test_min_size_follows_the_options():
    assert get_info("ssim").min_side() == 11 and create_metric("ssim", window_size=7).min_size == 7
    assert create_metric("ms_ssim", weights=(0.5, 0.5)).min_size == 22
    assert create_metric("niqe", block_size=32).min_size == 32
    assert create_metric("psnr", crop_border=4).min_size == 9
    x = torch.rand(1, 1, 10, 10)
    assert torch.isfinite(create_metric("ssim", window_size=7)(x, x * 0.5))  # 10x10 fits a 7x7 window


# --- the cases of the issue -----------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [1, 5, 10])
def test_ssim_on_thumbnails_is_a_clear_error(size):
    x = torch.rand(1, 3, size, size)
    with pytest.raises(IQAError, match=rf"ssim needs images of at least 11x11 pixels .*got {size}x{size}"):
        create_metric("ssim")(x, x)


@pytest.mark.parametrize("pair", ["grey", "black-white"])
@pytest.mark.parametrize("name", ["cw_ssim", "fsim", "fsimc", "nqm", "vifp", "vsnr", "vif", "ifc", "iw_ssim"])
def test_flat_pairs_give_the_original_nan_with_one_warning_naming_the_cause(name, pair):
    s = max(get_info(name).min_side(), 64)
    d, r = (torch.full((1, 3, s, s), 0.5),) * 2 if pair == "grey" else (torch.zeros(1, 3, s, s), torch.ones(1, 3, s, s))
    out, warned = score(create_metric(name), d, r)
    if torch.isfinite(out).all():  # a defined score (e.g. vsnr's Weber-law branch for black against white)
        assert not warned
        return
    assert len(warned) == 1 and str(warned[0].message).startswith(f"{name} gave ")
    assert get_info(name).nonfinite_cause(float(out)) in str(warned[0].message)


def test_no_reference_metrics_on_a_black_frame():
    black = torch.zeros(2, 3, 128, 128)
    for name, want_nan in (("niqe", True), ("brisque", True), ("piqe", False)):
        out, warned = score(create_metric(name), black, None)
        assert bool(torch.isnan(out).all()) is want_nan and len(warned) == int(want_nan)
        if want_nan:
            assert "flat" in str(warned[0].message) and "2 of 2 image(s)" in str(warned[0].message)


def test_psnr_of_identical_images_is_inf_and_other_values_are_unchanged():
    x = torch.rand(2, 3, 16, 16)
    y = x.clone()
    y[1] = (y[1] + 0.1).clamp(0, 1)
    out, warned = score(create_metric("psnr"), y, x)
    assert out[0] == float("inf") and len(warned) == 1 and "identical images" in str(warned[0].message)
    mse = (y[1] - x[1]).square().mean()
    assert out[1] == -10 * torch.log10(mse + 1e-10)


def test_single_block_niqe_follows_matlab_nancov():
    """One 96x96 block: MATLAB's nancov normalises a single observation by 1, so the score is finite."""
    out, warned = score(create_metric("niqe"), torch.rand(1, 1, 96, 96, generator=torch.Generator().manual_seed(1)),
                        None)
    assert torch.isfinite(out).all() and not warned


def test_one_warning_per_call_for_a_batch_of_mixed_causes():
    s = 32
    d = torch.stack([torch.full((1, s, s), 0.5), torch.rand(1, s, s), torch.rand(1, s, s)])
    r = d.clone()
    r[2] = torch.full((1, s, s), 0.5)
    out, warned = score(create_metric("nqm"), d, r)
    assert len(warned) == 1
    kinds = {"nan" if math.isnan(v) else "inf" if v > 0 else "-inf" for v in out.tolist() if not math.isfinite(v)}
    for k in kinds:
        assert f"{k}: " in str(warned[0].message)
