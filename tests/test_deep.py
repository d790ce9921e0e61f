"""Deep metrics (LPIPS, DISTS, PieAPP, WaDIQaM-FR) and the backbones they run on.

The ImageNet and model weights are not available here, so parity is shown on stand-in weights:
``iqarena.backbones.seeded_state_dict`` rebuilds, in this environment, the same numbers that
benchmarks/parity_deep.py fed to the original authors' code (lpips 0.1.4, DISTS_pytorch 0.1, PieAPP's
PyTorch model and test procedure, deepIQA's Chainer model) in the peers' environment; the original code's
outputs are in tests/data/deep_parity.json. With the real files in the cache, the official values are
checked too (skipped, with the reason, when they are not there).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from conftest import DATA, assert_printed_precision
from iqarena import backbones as B
from iqarena import create_metric, weights
from iqarena.errors import IQAError
from iqarena.metrics.dists import DISTS
from iqarena.metrics.lpips import LPIPS
from iqarena.metrics.pieapp import PieAPP, demo_positions
from iqarena.metrics.wadiqam import WaDIQaMFR
from helpers.stand_in import catalogue_stand_in

PARITY = json.loads((DATA / "deep_parity.json").read_text())
KEYS = json.loads((DATA / "backbone_keys.json").read_text())
_spec = importlib.util.spec_from_file_location("parity_deep", Path(__file__).parents[1] / "benchmarks" / "parity_deep.py")
parity = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(parity)

NETS = {"alexnet": B.AlexNet, "vgg16": B.VGG16, "squeezenet1_1": B.SqueezeNet11, "resnet18": B.resnet18,
        "resnet34": B.resnet34, "resnet50": B.resnet50, "resnet101": B.resnet101, "resnet152": B.resnet152,
        "inception_resnet_v2": B.InceptionResNetV2}


@pytest.fixture(scope="module")
def crops(pairs):
    y0, y1, x0, x1 = PARITY["crop"]
    d, r = pairs
    return d[:, :, y0:y1, x0:x1].contiguous(), r[:, :, y0:y1, x0:x1].contiguous()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The parity script's stand-in weights, rebuilt here and saved as the metrics' files."""
    tmp = tmp_path_factory.mktemp("standin")
    out = {}
    for name in ("alexnet", "vgg16", "squeezenet1_1"):
        out[name] = tmp / f"{name}.pth"
        torch.save(parity.stand_in(name), out[name])
    out["pieapp"] = tmp / "pieapp.pth"
    torch.save(parity.pieapp_stand_in(), out["pieapp"])
    h5py = pytest.importorskip("h5py")
    out["wadiqam"] = tmp / "fr_seeded.model"  # the published files' layout: Chainer HDF5, link/W and link/b
    with h5py.File(out["wadiqam"], "w") as f:
        for k, v in parity.wadiqam_stand_in().items():
            f[k.replace(".weight", "/W").replace(".bias", "/b")] = v.numpy()
    return out


@pytest.fixture(scope="module")
def nets(files):
    """One instance of each metric on the stand-in files (PieAPP's file alone is 250 MB)."""
    return {"alex": LPIPS("alex", backbone=files["alexnet"]), "pieapp": PieAPP(weights=files["pieapp"]),
            "wadiqam": WaDIQaMFR(weights=files["wadiqam"])}


def close(got: torch.Tensor, want: list[float], atol: float = 1e-5, rtol: float = 1e-5) -> None:
    torch.testing.assert_close(got.double(), torch.tensor(want, dtype=torch.float64), atol=atol, rtol=rtol)


# --- backbones ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(NETS))
def test_backbone_keys_and_shapes_equal_the_published_checkpoints(name):
    with torch.device("meta"):
        net = NETS[name]()
    assert {k: list(v.shape) for k, v in net.state_dict().items()} == KEYS[name]
    with torch.device("meta"):
        assert all(not k.startswith(("classifier", "fc.", "last_linear")) for k in NETS[name](include_top=False).state_dict())


@pytest.mark.parametrize("tag,make", [("resnet50", B.resnet50), ("squeezenet1_1_full", B.SqueezeNet11),
                                      ("inception_resnet_v2", B.InceptionResNetV2)])
def test_backbone_forward_equals_torchvision_and_timm(tag, make):
    keys = {"squeezenet1_1_full": "squeezenet1_1"}.get(tag, tag)
    net = B.from_state_dict(make, parity.seeded_state_dict(KEYS[keys], PARITY["seeds"][tag])).eval()
    with torch.no_grad():
        logits = net(parity.backbone_input())
    want = PARITY["backbones"][tag]
    scale = max(abs(v) for row in want["first16"] for v in row)
    close(logits[:, :16], want["first16"], atol=1e-5 * scale, rtol=1e-4)
    close(logits.abs().sum(1), want["abs_sum"], atol=0, rtol=1e-4)


def test_published_file_loads_through_the_catalogue(tmp_path, monkeypatch, crops):
    """A full torchvision-layout checkpoint (classifier included) in the cache folder, hash-checked, loads
    unchanged and gives the same metric as the explicit file."""
    sd = parity.seeded_state_dict(KEYS["squeezenet1_1"], 3)
    path = catalogue_stand_in(monkeypatch, tmp_path, "squeezenet1_1", sd)
    full = B.load_weights(B.SqueezeNet11(), weights.load_state_dict("squeezenet1_1"))
    assert all(torch.equal(full.state_dict()[k], v) for k, v in sd.items())
    m = create_metric("lpips_squeeze")
    d, r = crops[0][:2], crops[1][:2]
    with torch.no_grad():
        torch.testing.assert_close(m(d, r), LPIPS("squeeze", backbone=path)(d, r))
    # and from the command line, on a full-size sample pair
    from typer.testing import CliRunner

    from conftest import SAMPLE
    from iqarena.cli import app
    from iqarena.io import read_image

    res = CliRunner().invoke(app, ["score", "-m", "lpips_squeeze", "--dist", str(SAMPLE / "dist" / "I03.png"),
                                   "--ref", str(SAMPLE / "ref" / "I03.png"), "--format", "csv"])
    assert res.exit_code == 0, res.output
    with torch.no_grad():
        want = m(read_image(SAMPLE / "dist" / "I03.png")[None], read_image(SAMPLE / "ref" / "I03.png")[None])
    assert abs(float(res.output.strip().splitlines()[-1].split(",")[-1]) - float(want)) < 1e-6


def test_load_weights_names_what_is_wrong():
    sd = parity.seeded_state_dict(KEYS["squeezenet1_1"], 0)
    with pytest.raises(IQAError, match="lacks 1 of .*features.0.bias"):
        B.load_weights(B.SqueezeNet11(), {k: v for k, v in sd.items() if k != "features.0.bias"})
    with pytest.raises(IQAError, match="does not fit"):
        B.load_weights(B.SqueezeNet11(), {**sd, "features.0.bias": torch.zeros(3)})
    renamed = {("classif." + k[len("classifier.1."):] if k.startswith("classifier.1.") else k): v for k, v in sd.items()}
    B.load_weights(B.SqueezeNet11(), renamed, rename={"classif.": "classifier.1."})


# --- parity with the original code ---------------------------------------------------------------------------

@pytest.mark.parametrize("net,file", [("alex", "alexnet"), ("vgg", "vgg16"), ("squeeze", "squeezenet1_1")])
def test_lpips_equals_the_lpips_package(net, file, files, nets, crops):
    m = nets["alex"] if net == "alex" else LPIPS(net, backbone=files[file])
    with torch.no_grad():
        close(m(*crops), PARITY["lpips"][net]["crop"])
        close(m.spatial_map(*crops).mean(dim=(1, 2, 3)), PARITY["lpips"][net]["spatial_crop_mean"])


def test_dists_equals_dists_pytorch(files, crops):
    with torch.no_grad():
        close(DISTS(backbone=files["vgg16"])(*crops), PARITY["dists"]["crop"])


def test_pieapp_equals_the_authors_code(nets, crops):
    m = nets["pieapp"]
    with torch.no_grad():
        close(m(*crops), PARITY["pieapp"]["crop"], atol=1e-4)
        m.stride = 6  # the demo's "dense" sampling, on the first pair (36 patches)
        try:
            close(m(crops[0][:1], crops[1][:1]), PARITY["pieapp"]["crop_stride6"][:1], atol=1e-4)
        finally:
            m.stride = 27


def test_pieapp_patch_grid_follows_the_demo_loop():
    assert demo_positions(384, 27) == tuple(range(0, 298, 27))  # 12 rows; 320 itself is never visited
    assert demo_positions(512, 27) == tuple(range(0, 433, 27))
    assert demo_positions(384, 6)[-1] == 318 and len(demo_positions(384, 6)) == 54
    # 11 grid positions: the last chunk holds only L - 64, and the first chunk stops one step early
    assert demo_positions(314, 27) == tuple(range(0, 217, 27)) + (250,)
    assert demo_positions(64, 27) == (0,)


def test_wadiqam_fr_equals_the_authors_chainer_code(nets, crops):
    with torch.no_grad():
        close(nets["wadiqam"](*crops), PARITY["wadiqam_fr"]["crop"], atol=0, rtol=1e-5)


# --- properties ------------------------------------------------------------------------------------------------

def test_batch_equals_one_by_one_float32(nets, crops):
    d, r = crops[0][:3], crops[1][:3]
    for m in nets.values():
        with torch.no_grad():
            batch = m(d, r)
            single = torch.cat([m(d[i:i + 1], r[i:i + 1]) for i in range(3)])
        assert batch.dtype == torch.float32 and batch.shape == (3,)
        torch.testing.assert_close(batch, single, atol=1e-5, rtol=1e-5)


def test_lpips_and_dists_work_as_losses(files, nets, crops):
    d, r = crops[0][:2, :, :48, :48], crops[1][:2, :, :48, :48]
    for m in (nets["alex"], DISTS(backbone=files["vgg16"])):
        x = d.clone().requires_grad_(True)
        loss = m(x, r).sum()
        loss.backward()
        assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
        assert all(p.grad is None for p in m.parameters())
        with torch.no_grad():
            assert m(r, r).abs().max() < 1e-6  # identity is the best score


def test_grey_input_is_repeated_to_rgb(nets, crops):
    g = crops[0][:2, :1]
    h = crops[1][:2, :1]
    m = nets["alex"]
    with torch.no_grad():
        torch.testing.assert_close(m(g, h), m(g.expand(-1, 3, -1, -1), h.expand(-1, 3, -1, -1)))


def test_too_small_or_bad_options_raise_clear_errors(files, nets):
    x = torch.rand(1, 3, 48, 48)
    with pytest.raises(IQAError, match="at least 64x64"):
        nets["pieapp"](x, x)
    with pytest.raises(IQAError, match="at least 32x32"):
        nets["wadiqam"](x[..., :20, :20], x[..., :20, :20])
    with pytest.raises(IQAError, match="'tid' or 'live'"):
        WaDIQaMFR(model="csiq", weights=files["wadiqam"])
    with pytest.raises(ValueError, match="net must be one of"):
        LPIPS("resnet")


# --- official values with the real files ------------------------------------------------------------------------

def _need(*names: str) -> None:
    missing = [n for n in names if not weights.is_present(n)]
    if missing:
        pytest.skip(f"needs the published {', '.join(weights.entry(n).filename for n in missing)} in "
                    f"{weights.cache_dir()} (iqarena weights fetch {' / '.join(missing)}; offline: iqarena weights add)")


@pytest.mark.parametrize("metric,files_needed", [("lpips", ("alexnet",)), ("dists", ("vgg16",)),
                                                 ("pieapp", ("pieapp",))])
def test_official_values_with_the_published_weights(metric, files_needed, pairs):
    _need(*files_needed)
    with torch.no_grad():
        assert_printed_precision(create_metric(metric)(*pairs), metric)
