"""Parity of iqarena's deep metrics with the original authors' code, on the same (random) weights.

Run in the peers' environment (torch + torchvision + the ``lpips`` and ``DISTS_pytorch`` packages, pyiqa):

    HF_HUB_OFFLINE=1 /tmp/peers/bin/python benchmarks/parity_deep.py \
        [--pieapp-repo CHECKOUT] [--deepiqa-repo CHECKOUT --chainer-python /tmp/chainer-env/bin/python] \
        [--write tests/data/deep_parity.json]

The ImageNet weights cannot be downloaded here, so both sides get the same stand-in backbone weights:
``iqarena.backbones.seeded_state_dict`` (numpy's legacy RandomState, fixed seeds: the same numbers in any
environment) for the published key names. The original packages take them as follows:

- ``lpips``: ``lpips.pretrained_networks.tv.alexnet/vgg16/squeezenet1_1`` are replaced by functions that
  build the torchvision model without pretrained weights and load the stand-in features; the v0.1 linear
  layers are the package's own (the same files iqarena ships).
- ``DISTS_pytorch``: ``DISTS_pt.models.vgg16`` is replaced the same way; ``DISTS(load_weights=False)`` then
  gets alpha/beta from the package's weights.pt (the file iqarena ships).
- PieAPP: the authors' model/PieAPPv0pt1_PT.py and utils/image_utils.py from a checkout of
  github.com/prashnani/PerceptualImageError, driven like test_PieAPP_PT.py (BGR 0..255, sub-images of 10x10
  patch positions, ``sample_patches(..., 'strided')``, weighted mean); its ``.cuda()`` call is made a no-op
  on CPU. pyiqa's PieAPP with the same file is run alongside.
- WaDIQaM-FR: the authors' Chainer code (fr_model.py of github.com/dmaniry/deepIQA), in its own
  environment (parity_wadiqam_chainer.py), which also writes the weights with Chainer's save_hdf5, the
  format of the published files; iqarena loads that HDF5 file.

Inputs: the five calibration pairs at full size (384x512) and their 96x96 crops [144:240, 208:304] (the
crops are what tests/test_deep.py recomputes quickly). ``--write`` records the original code's outputs as
test expectations. Also times each side (median of 3, CPU threads as set by torch).
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from iqarena.backbones import seeded_state_dict  # noqa: E402
from iqarena.io import read_image  # noqa: E402
from iqarena.metrics.dists import DISTS  # noqa: E402
from iqarena.metrics.lpips import LPIPS  # noqa: E402
from iqarena.metrics.pieapp import PieAPP  # noqa: E402
from iqarena.metrics.wadiqam import WaDIQaMFR  # noqa: E402

NAMES = ["I03", "I04", "I06", "I08", "I19"]
CROP = (slice(144, 240), slice(208, 304))
SEEDS = {"alexnet": 1, "vgg16": 2, "squeezenet1_1": 3, "pieapp": 4, "wadiqam": 5, "resnet50": 6,
         "inception_resnet_v2": 7, "squeezenet1_1_full": 8}
BACKBONE_INPUT = (1, 3, 80, 80)  # numpy RandomState(0).random_sample, float32
KEYS = json.loads((ROOT / "tests" / "data" / "backbone_keys.json").read_text())


def stand_in(name: str) -> dict[str, torch.Tensor]:
    """Seeded ``features.*`` tensors of a torchvision backbone (what LPIPS and DISTS use)."""
    return seeded_state_dict({k: v for k, v in KEYS[name].items() if k.startswith("features.")}, SEEDS[name])


def pieapp_shapes() -> dict[str, tuple[int, ...]]:
    from iqarena.metrics.pieapp import PieAPPNet

    return {k: tuple(v.shape) for k, v in PieAPPNet().state_dict().items()}


def pieapp_stand_in() -> dict[str, torch.Tensor]:
    """Seeded PieAPP weights in the published file's layout (ref_score_subtract.weight of shape (1,)); the
    weight branch's last layer is made positive so that the weighted mean is well conditioned."""
    sd = seeded_state_dict(pieapp_shapes(), SEEDS["pieapp"])
    sd["fc2_weight.weight"] = sd["fc2_weight.weight"].abs()
    sd["fc2_weight.bias"] = torch.tensor([0.1])
    sd["ref_score_subtract.weight"] = torch.tensor([1.5])
    sd["ref_score_subtract.bias"] = torch.tensor([0.2])
    return sd


def wadiqam_stand_in() -> dict[str, torch.Tensor]:
    from iqarena.metrics.wadiqam import WaDIQaMFRNet

    shapes = {k: tuple(v.shape) for k, v in WaDIQaMFRNet().state_dict().items()}
    return seeded_state_dict(shapes, SEEDS["wadiqam"])


def images() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    sample = ROOT / "src" / "iqarena" / "sample"
    dist = torch.stack([read_image(sample / "dist" / f"{n}.png") for n in NAMES])
    ref = torch.stack([read_image(sample / "ref" / f"{n}.png") for n in NAMES])
    return {"full": (dist, ref), "crop": (dist[:, :, CROP[0], CROP[1]].contiguous(),
                                          ref[:, :, CROP[0], CROP[1]].contiguous())}


REPEAT = 3


def timed(fn, repeat: int | None = None):
    times, out = [], None
    repeat = repeat or REPEAT
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, float(np.median(times))


def tv_stub(name: str, sd: dict[str, torch.Tensor]):
    import torchvision

    make = getattr(torchvision.models, "_iqarena_" + name, None) or getattr(torchvision.models, name)
    setattr(torchvision.models, "_iqarena_" + name, make)  # the real constructor, kept across patches

    def build(*args, **kwargs):
        net = make(weights=None)
        missing, unexpected = net.load_state_dict(sd, strict=False)
        assert not unexpected and all(not k.startswith("features.") for k in missing)
        return net

    return build


def backbone_input() -> torch.Tensor:
    return torch.from_numpy(np.random.RandomState(0).random_sample(BACKBONE_INPUT).astype(np.float32))


def run_backbones(report: dict) -> dict:
    """Whole-network forward (classifier included) of torchvision's / timm's models and ours, same weights."""
    import timm
    import torchvision

    from iqarena import backbones as B

    x = backbone_input()
    out = {}
    cases = [("resnet50", "resnet50", lambda: torchvision.models.resnet50(weights=None), B.resnet50, None),
             ("squeezenet1_1_full", "squeezenet1_1", lambda: torchvision.models.squeezenet1_1(weights=None),
              B.SqueezeNet11, None),
             ("inception_resnet_v2", "inception_resnet_v2",
              lambda: timm.create_model("inception_resnet_v2", pretrained=False), B.InceptionResNetV2,
              {"last_linear.": "classif."})]
    for tag, keys, make_ref, make_ours, rename in cases:
        sd = seeded_state_dict(KEYS[keys], SEEDS[tag])
        ref = make_ref().eval()
        ref_sd = {k if not rename else k.replace("last_linear.", "classif."): v for k, v in sd.items()}
        ref.load_state_dict(ref_sd)
        ours = B.load_weights(make_ours().eval(), sd)
        with torch.no_grad():
            a, b = ref(x), ours(x)
        out[tag] = {"first16": a[:, :16].tolist(), "sum": a.sum(1).tolist(), "abs_sum": a.abs().sum(1).tolist()}
        report[f"backbone {tag} logits max|diff| (max|logit| {float(a.abs().max()):.3g})"] = float((a - b).abs().max())
    return out


def run_lpips(tmp: Path, imgs, report: dict) -> dict:
    import lpips
    import lpips.pretrained_networks as pn

    out = {}
    for net, tv_name in (("alex", "alexnet"), ("vgg", "vgg16"), ("squeeze", "squeezenet1_1")):
        sd = stand_in(tv_name)
        path = tmp / f"{tv_name}.pth"
        torch.save(sd, path)
        setattr(pn.tv, tv_name, tv_stub(tv_name, sd))
        orig = lpips.LPIPS(net=net, version="0.1", verbose=False).eval()
        ours = LPIPS(net=net, backbone=path).eval()
        out[net] = {}
        for tag, (d, r) in imgs.items():
            with torch.no_grad():
                a, ta = timed(lambda: orig(d, r, normalize=True).flatten())
                b, tb = timed(lambda: ours(d, r))
            out[net][tag] = a.tolist()
            report[f"lpips_{net} {tag} max|diff|"] = float((a - b).abs().max())
            report[f"lpips_{net} {tag} seconds orig/ours"] = (round(ta, 3), round(tb, 3))
        d, r = imgs["crop"]
        orig_sp = lpips.LPIPS(net=net, version="0.1", spatial=True, verbose=False).eval()
        with torch.no_grad():
            sm_a, sm_b = orig_sp(d, r, normalize=True), ours.spatial_map(d, r)
        report[f"lpips_{net} crop spatial map max|diff|"] = float((sm_a - sm_b).abs().max())
        out[net]["spatial_crop_mean"] = sm_a.mean(dim=(1, 2, 3)).tolist()
    return out


def run_dists(tmp: Path, imgs, report: dict) -> dict:
    from DISTS_pytorch import DISTS_pt

    sd = stand_in("vgg16")
    path = tmp / "vgg16.pth"
    torch.save(sd, path)
    DISTS_pt.models.vgg16 = tv_stub("vgg16", sd)
    orig = DISTS_pt.DISTS(load_weights=False).eval()
    ab = torch.load(Path(DISTS_pt.__file__).parent / "weights.pt", map_location="cpu", weights_only=True)
    orig.alpha.data, orig.beta.data = ab["alpha"], ab["beta"]
    ours = DISTS(backbone=path).eval()
    out = {}
    for tag, (d, r) in imgs.items():
        a, ta = timed(lambda: orig(r, d).detach().flatten())
        with torch.no_grad():
            b, tb = timed(lambda: ours(d, r))
        out[tag] = a.tolist()
        report[f"dists {tag} max|diff|"] = float((a - b).abs().max())
        report[f"dists {tag} seconds orig/ours"] = (round(ta, 3), round(tb, 3))
    return out


def original_pieapp(repo: Path, sd: dict[str, torch.Tensor], d: torch.Tensor, r: torch.Tensor,
                    stride: int) -> list[float]:
    """test_PieAPP_PT.py's procedure with the authors' model and patch sampler, one image at a time."""
    sys.path.insert(0, str(repo))
    PieAPPv0 = importlib.import_module("model.PieAPPv0pt1_PT").PieAPP
    sample_patches = importlib.import_module("utils.image_utils").sample_patches
    torch.Tensor.cuda = lambda self, *a, **k: self  # the model calls .cuda() on a constant
    net = PieAPPv0(1, 10)
    sd = dict(sd)
    sd["ref_score_subtract.weight"] = sd["ref_score_subtract.weight"].view(1, 1)
    net.load_state_dict(sd)
    net.eval()
    out = []
    for i in range(d.shape[0]):
        # cv2.imread gives BGR uint8 -> float32, HWC, batch of one
        A = (d[i].flip(0).permute(1, 2, 0).numpy() * 255).round().astype(np.float32)[None]
        R = (r[i].flip(0).permute(1, 2, 0).numpy() * 255).round().astype(np.float32)[None]
        _, rows, cols, _ = R.shape
        p = 64
        y_loc = np.concatenate((np.arange(0, rows - p, stride), [rows - p]))
        x_loc = np.concatenate((np.arange(0, cols - p, stride), [cols - p]))
        acc_s = acc_w = 0.0
        for xi in range(-(-len(x_loc) // 10)):
            for yi in range(-(-len(y_loc) // 10)):
                def size(loc, it, full):
                    if 10 * (it + 1) >= len(loc):
                        return full - loc[10 * it]
                    return loc[10 * (it + 1)] - loc[10 * it] + p - stride
                sr, sc = size(y_loc, yi, rows), size(x_loc, xi, cols)
                y0, x0 = y_loc[10 * yi], x_loc[10 * xi]
                a_sub, r_sub = A[:, y0:y0 + sr, x0:x0 + sc], R[:, y0:y0 + sr, x0:x0 + sc]
                pa, pr = sample_patches(a_sub, r_sub, patch_size=64, strideval=stride, random_selection=False,
                                        uniform_grid_mode="strided")
                net.num_patches = pa.shape[0]
                with torch.no_grad():
                    # contiguous: torch 0.3's .float() copied to a contiguous tensor, today's keeps strides
                    _, err, wt = net.compute_score(
                        torch.from_numpy(np.ascontiguousarray(pa.transpose(0, 3, 1, 2))).float(),
                        torch.from_numpy(np.ascontiguousarray(pr.transpose(0, 3, 1, 2))).float())
                acc_s += float((err * wt).sum())
                acc_w += float(wt.sum())
        out.append(acc_s / acc_w)
    return out


def run_pieapp(tmp: Path, imgs, report: dict, repo: Path | None) -> dict:
    sd = pieapp_stand_in()
    path = tmp / "pieapp.pth"
    torch.save(sd, path)
    ours = PieAPP(weights=path).eval()
    out = {}
    for tag, (d, r) in imgs.items():
        with torch.no_grad():
            b, tb = timed(lambda: ours(d, r), repeat=1 if tag == "full" else 3)
        if repo is not None:
            (a, ta) = timed(lambda: torch.tensor(original_pieapp(repo, sd, d, r, 27)), repeat=1)
            out[tag] = a.tolist()
            report[f"pieapp {tag} max|diff| vs authors' code"] = float((a - b).abs().max())
            report[f"pieapp {tag} seconds authors/ours"] = (round(ta, 3), round(tb, 3))
        try:
            import pyiqa

            m = pyiqa.create_metric("pieapp", pretrained_model_path=str(path), device="cpu")
            with torch.no_grad():
                c, tc = timed(lambda: m(d, r).flatten(), repeat=1)
            report[f"pieapp {tag} max|diff| vs pyiqa"] = float((c - b).abs().max())
            report[f"pieapp {tag} seconds pyiqa"] = round(tc, 3)
        except Exception as exc:  # noqa: BLE001 - a peer failing is reported, not fatal
            report[f"pieapp {tag} pyiqa"] = f"failed: {exc}"
    if repo is not None:
        d, r = imgs["crop"]
        a6 = torch.tensor(original_pieapp(repo, sd, d, r, 6))
        with torch.no_grad():
            b6 = PieAPP(stride=6, weights=path)(d, r)
        out["crop_stride6"] = a6.tolist()
        report["pieapp crop stride 6 max|diff| vs authors' code"] = float((a6 - b6).abs().max())
    return out


def run_wadiqam(tmp: Path, imgs, report: dict, repo: Path | None, chainer_python: str | None) -> dict:
    if repo is None or chainer_python is None:
        return {}
    sd = wadiqam_stand_in()
    np.savez(tmp / "wadiqam.npz", **{k.replace(".weight", "/W").replace(".bias", "/b"): v.numpy()
                                     for k, v in sd.items()})
    arrays = {}
    for tag, (d, r) in imgs.items():
        for i, n in enumerate(NAMES):
            arrays[f"dist_{tag}_{n}"] = (d[i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            arrays[f"ref_{tag}_{n}"] = (r[i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    np.savez(tmp / "images.npz", **arrays)
    hdf5 = tmp / "fr_seeded.model"
    t0 = time.perf_counter()
    subprocess.run([chainer_python, str(ROOT / "benchmarks" / "parity_wadiqam_chainer.py"), "--deepiqa", str(repo),
                    "--weights", str(tmp / "wadiqam.npz"), "--images", str(tmp / "images.npz"),
                    "--save-hdf5", str(hdf5), "--out", str(tmp / "chainer.json")], check=True)
    t_chainer = time.perf_counter() - t0
    got = json.loads((tmp / "chainer.json").read_text())
    ours = WaDIQaMFR(weights=hdf5).eval()  # reads the HDF5 file Chainer wrote
    out = {"chainer": got["chainer"]}
    for tag, (d, r) in imgs.items():
        a = torch.tensor([got["scores"][f"{tag}_{n}"] for n in NAMES])
        with torch.no_grad():
            b, tb = timed(lambda: ours(d, r))
        out[tag] = a.tolist()
        report[f"wadiqam_fr {tag} max|diff| vs authors' Chainer code"] = float((a - b).abs().max())
        report[f"wadiqam_fr {tag} seconds ours"] = round(tb, 3)
    report["wadiqam_fr seconds authors' Chainer code (both sizes, incl. start-up)"] = round(t_chainer, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pieapp-repo", type=Path)
    ap.add_argument("--deepiqa-repo", type=Path)
    ap.add_argument("--chainer-python")
    ap.add_argument("--write", type=Path)
    ap.add_argument("--only-crops", action="store_true")
    ap.add_argument("--repeat", type=int, default=3, help="timing repeats (median)")
    args = ap.parse_args()
    global REPEAT
    REPEAT = args.repeat
    torch.manual_seed(0)
    imgs = images()
    if args.only_crops:
        imgs.pop("full")
    report: dict = {}
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        result = {
            "_how": "outputs of the original authors' code (lpips 0.1.4, DISTS_pytorch 0.1, PieAPP's "
                    "PieAPPv0pt1_PT.py + test_PieAPP_PT.py procedure, deepIQA's Chainer FRModel) with stand-in "
                    "backbone weights iqarena.backbones.seeded_state_dict(keys, seed); see "
                    "benchmarks/parity_deep.py",
            "seeds": SEEDS, "backbone_input": list(BACKBONE_INPUT), "names": NAMES,
            "crop": [CROP[0].start, CROP[0].stop, CROP[1].start, CROP[1].stop],
            "lpips": run_lpips(tmp, imgs, report),
            "dists": run_dists(tmp, imgs, report),
            "pieapp": run_pieapp(tmp, imgs, report, args.pieapp_repo),
            "wadiqam_fr": run_wadiqam(tmp, imgs, report, args.deepiqa_repo, args.chainer_python),
            "backbones": run_backbones(report),
        }
    for k, v in report.items():
        print(f"{k:60s} {v}")
    if args.write:
        result["max_abs_diff_ours"] = {k: v for k, v in report.items() if "max|diff|" in k}
        args.write.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.write}")


if __name__ == "__main__":
    main()
