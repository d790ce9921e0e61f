"""io, registry, input checks, PSNR and SSIM."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import iqarena
from iqarena import IQAError, create_metric, read_image
from iqarena.io import collect_pairs
from iqarena.ops.color import rgb2gray
from iqarena.ops.filters import conv2, imfilter, pad
from iqarena.ops.resize import imresize, resize_matrix

from conftest import assert_printed_precision
from properties import DISTORTIONS, monotone


# ---- io -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "I;16", "LA", "1"])
@pytest.mark.parametrize("fmt", ["png", "bmp", "tiff", "gif", "jpeg"])
def test_read_image_modes(tmp_path, mode, fmt):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    img = Image.fromarray(rgb, "RGB")
    if mode == "I;16":
        img = Image.fromarray(rng.integers(0, 65536, (6, 5), dtype=np.uint16))
    elif mode != "RGB":
        img = img.convert(mode)
    if (fmt, mode) in {("bmp", "I;16"), ("bmp", "LA"), ("gif", "I;16"), ("gif", "LA"), ("gif", "RGBA"),
                       ("jpeg", "I;16"), ("jpeg", "LA"), ("jpeg", "RGBA"), ("jpeg", "P"), ("bmp", "RGBA")}:
        pytest.skip("format cannot store this mode")
    path = tmp_path / f"x.{fmt}"
    img.save(path)
    x = read_image(path)
    assert x.dtype == torch.float32 and x.shape[1:] == (6, 5)
    assert x.shape[0] in (1, 3) and 0 <= x.min() and x.max() <= 1
    if fmt in ("png", "tiff") and mode == "I;16":
        ref = np.asarray(img, dtype=np.float64) / 65535
        assert np.allclose(x[0].numpy(), ref, atol=1e-6)
    if fmt in ("png", "bmp", "tiff") and mode == "RGB":
        assert np.array_equal((x.numpy() * 255).round().astype(np.uint8).transpose(1, 2, 0), rgb)


def test_grey_gif_reads_as_one_channel(goldhill):
    jpeg, orig = goldhill
    assert orig.shape == (1, 1, 512, 512) and jpeg.shape == orig.shape


def test_unreadable_and_missing_files(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(IQAError, match="cannot read image"):
        read_image(bad)
    with pytest.raises(IQAError, match="not found"):
        read_image(tmp_path / "missing.png")


def test_collect_pairs_folders_csv_and_errors(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "r").mkdir()
    (tmp_path / "empty").mkdir()
    for n in ("a.png", "b.png"):
        Image.new("RGB", (4, 4)).save(tmp_path / "d" / n)
        Image.new("RGB", (4, 4)).save(tmp_path / "r" / n)
    ps = collect_pairs(tmp_path / "d", tmp_path / "r")
    assert [(p.dist.name, p.ref.name) for p in ps] == [("a.png", "a.png"), ("b.png", "b.png")]
    Image.new("RGB", (4, 4)).save(tmp_path / "d" / "c.png")
    with pytest.raises(IQAError, match="no reference of the same name.*c.png"):
        collect_pairs(tmp_path / "d", tmp_path / "r")
    with pytest.raises(IQAError, match="no images in folder"):
        collect_pairs(tmp_path / "empty")
    lst = tmp_path / "pairs.csv"
    lst.write_text("dist,ref\nd/a.png,r/a.png\n")
    assert collect_pairs(pairs_csv=lst)[0].ref == tmp_path / "r" / "a.png"
    lst.write_text("image,reference\nd/a.png,r/a.png\n")
    with pytest.raises(IQAError, match="'dist' column"):
        collect_pairs(pairs_csv=lst)


# ---- input checks ---------------------------------------------------------------------------------

def test_metric_input_errors():
    m = create_metric("ssim")
    x = torch.rand(1, 3, 32, 32)
    with pytest.raises(IQAError, match="same size"):
        m(x, torch.rand(1, 3, 32, 31))
    with pytest.raises(IQAError, match="NaN"):
        m(x.clone().fill_(float("nan")), x)
    with pytest.raises(IQAError, match=r"\[0, 1\]"):
        m(x * 255, x)
    with pytest.raises(IQAError, match="dtype"):
        m((x * 255).to(torch.uint8), x)
    with pytest.raises(IQAError, match="N, C, H, W"):
        m(x[0], x[0])
    with pytest.raises(IQAError, match="full-reference"):
        m(x)
    with pytest.raises(IQAError, match="unknown metric"):
        create_metric("nope")
    with pytest.raises(IQAError, match="no option"):
        create_metric("ssim", sigma_typo=2)


def test_registry_entries_are_complete():
    for name in iqarena.list_metrics(family="metric"):
        info = iqarena.get_info(name)
        assert name == name.lower() and " " not in name
        assert info.kind in ("fr", "nr") and info.paper and info.code and info.colour
        assert info.score_range[0] < info.score_range[1]


# ---- ops ------------------------------------------------------------------------------------------

def test_rgb2gray_matches_matlab_rounding():
    x = torch.tensor([[[[200 / 255]], [[100 / 255]], [[50 / 255]]]])
    # 0.298936021293775*200 + 0.587043074451121*100 + 0.114020904255103*50 = 124.1926 -> 124
    assert round(rgb2gray(x).item() * 255) == 124
    assert abs(rgb2gray(x, quantize=False).item() * 255 - 124.19256) < 1e-3


def test_symmetric_padding_and_conv2():
    x = torch.arange(1.0, 5.0).view(1, 1, 1, 4)
    assert pad(x, 0, 0, 2, 2, "symmetric").flatten().tolist() == [2, 1, 1, 2, 3, 4, 4, 3]
    k = torch.tensor([[1.0, 2.0, 3.0]])
    # conv2 flips the kernel, imfilter does not
    assert conv2(x, k, "full").flatten().tolist() == [1, 4, 10, 16, 17, 12]
    assert imfilter(x, k, "zeros", "same").flatten().tolist() == [8, 14, 20, 11]
    assert conv2(x, k, "same").flatten().tolist() == [4, 10, 16, 17]


def test_imresize_hand_computed_and_dense_equivalent():
    # bilinear, antialiased shrink by 2: taps 0.125, 0.375, 0.375, 0.125 at positions 0..3 (1-based), the
    # tap at position 0 mirrored onto position 1: 0.125 + 0.375 + 0.375 * 2 + 0.125 * 3 = 1.625
    x = torch.arange(1.0, 5.0, dtype=torch.float64).view(1, 1, 1, 4)
    assert imresize(x, size=(1, 2), method="bilinear").flatten().tolist() == [1.625, 3.375]
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 37, 53, generator=g, dtype=torch.float64)
    for size, method in [((19, 27), "bicubic"), ((50, 70), "bilinear"), ((37, 20), "box")]:
        mh = resize_matrix(37, size[0], size[0] / 37, method)
        mw = resize_matrix(53, size[1], size[1] / 53, method)
        dense = torch.einsum("oh,nchw,pw->ncop", mh, x, mw)
        out = imresize(x, size=size, method=method)
        assert out.shape == dense.shape and torch.allclose(out, dense, rtol=0, atol=1e-13)
    assert torch.equal(imresize(torch.full((1, 1, 30, 40), 0.25), 0.5), torch.full((1, 1, 15, 20), 0.25))


def test_imresize_nan_stays_local():
    x = torch.zeros(1, 1, 64, 64, dtype=torch.float64)
    x[0, 0, 5, 5] = float("nan")
    out = imresize(x, 0.5)
    assert torch.isnan(out[0, 0, :6, :6]).any() and not torch.isnan(out[0, 0, 8:, :]).any()


# ---- PSNR, SSIM -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["psnr", "ssim"])
def test_calibration(pairs, name):
    dist, ref = pairs
    assert_printed_precision(create_metric(name)(dist, ref), name)


@pytest.mark.parametrize("name", ["psnr", "ssim"])
def test_batch_equals_single_and_identity(pairs, name):
    dist, ref = pairs
    m = create_metric(name)
    batch = m(dist, ref)
    single = torch.cat([m(dist[i:i + 1], ref[i:i + 1]) for i in range(len(dist))])
    assert torch.allclose(batch, single, rtol=1e-5, atol=1e-6)
    if name == "ssim":
        assert torch.allclose(m(ref, ref), torch.ones(5))
    else:
        assert (m(ref, ref) > 90).all()


@pytest.mark.parametrize("kind", list(DISTORTIONS))
def test_ssim_psnr_monotone(i01, kind):
    fn, levels = DISTORTIONS[kind]
    for name in ("ssim", "psnr"):
        m = create_metric(name)
        assert monotone([m(fn(i01, lv), i01).item() for lv in levels], True), (name, kind)


def test_ssim_grey_input_and_gradient(goldhill):
    jpeg, orig = goldhill
    m = create_metric("ssim", colour="rgb")
    d = jpeg.clone().requires_grad_(True)
    s = m(d, orig)
    s.sum().backward()
    assert 0.5 < s.item() < 1 and torch.isfinite(d.grad).all() and d.grad.abs().sum() > 0
    # grey input: the gray and rgb options agree
    assert torch.allclose(create_metric("ssim")(jpeg, orig), s.detach())


def test_ssim_downsample_option(pairs):
    dist, ref = pairs
    a = create_metric("ssim")(dist[:1], ref[:1])
    b = create_metric("ssim", downsample=True)(dist[:1], ref[:1])
    assert abs(a - b).item() > 1e-3  # 384 px -> factor 2 applies


@pytest.mark.parametrize("side", [384, 500, 700, 1100])  # factors 2 (even), 2, 3 (odd), 4 and ragged edges
def test_ssim_downsampling_filters_only_the_kept_samples(side):
    """The strided mean equals ssim.m's imfilter(box, 'symmetric', 'same') sampled every f-th pixel."""
    from iqarena.ops.filters import imfilter
    from iqarena.metrics.ssim import downsample_like_ssim_m
    x = torch.rand(2, 1, side, side + 37, generator=torch.Generator().manual_seed(side), dtype=torch.float64) * 255
    f = max(1, int(side / 256 + 0.5))
    box = torch.full((f, f), 1.0 / (f * f), dtype=torch.float64)
    want = imfilter(x, box, "symmetric", "same")[..., ::f, ::f]
    got = downsample_like_ssim_m(x)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-14, atol=1e-12)


@pytest.mark.parametrize("name", ["ssim", "ms_ssim"])
def test_ssim_maps_in_row_blocks_equal_one_block(name, pairs, monkeypatch):
    """ssim_means makes the maps a block of rows at a time (with the window's overlap): the smallest blocks
    give the whole image's means."""
    from iqarena.metrics import ssim as ssim_module
    dist, ref = (t[:2].double() for t in pairs)
    monkeypatch.setattr(ssim_module, "_BLOCK", 1)
    rows = create_metric(name)(dist, ref)
    monkeypatch.setattr(ssim_module, "_BLOCK", 1 << 40)
    whole = create_metric(name)(dist, ref)
    torch.testing.assert_close(rows, whole, rtol=1e-13, atol=0)
