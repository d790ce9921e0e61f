"""Parity of iqarena's IQT with the public code, on the same seeded weights and inputs.

Run in the peers' environment (torch, timm, einops, pyiqa 0.1.16) with a snapshot of github.com/anse3832/IQT:

    HF_HUB_OFFLINE=1 /tmp/peers/bin/python benchmarks/parity_iqt.py --anse-git /work/.mirror/anse3832+IQT/repo \
        [--write tests/data/models/iqt_parity.pt]

Both public implementations are built as their own code builds them and get the same stand-in weights
(``iqarena.backbones.seeded_state_dict``: numpy's legacy RandomState, the same numbers anywhere):

- backbone: the Inception-ResNet-v2 tensors IQT uses (stem, mixed_5b, the 10 Block35), seed 0, in their
  published order (Cadene's names, which timm's ``inception_resnet_v2`` shares); the unused rest of the
  network keeps its random initialisation (it cannot reach the outputs);
- transformer (``IQARegression``, the same names in both): seed 1 for the PIPAL configuration of the
  code (1 layer, d_hidn 128, 4 heads of 128, d_ff 1024, head 128, 192-pixel crops), seed 2 for a second
  configuration of anse3832's code (2 layers, d_hidn 64, 4 heads of 24, d_ff 96, head 48) that covers the
  multi-layer path and n_head * d_head != d_hidn.

anse3832/IQT: model/backbone.py and model/model_main.py from the snapshot, driven as its test.py does (hooks
on Mixed_5b and Block35, outputs 0, 2, 4, 6, 8, 10 concatenated, ``enc_inputs``/``dec_inputs`` of ones).
pyiqa: ``pyiqa.archs.iqt_arch.IQT(config_dataset='pipal')`` with ``timm.create_model(..., pretrained=False)``
(no download); its ``regress_score`` returns ``self.regressor(feat_diff)`` before the intended line (a
TypeError in 0.1.16), so this script calls ``regressor(enc_inputs, feat_diff, dec_inputs, feat_ref)`` after
its own ``get_backbone_feature`` as the unreachable line means.

Inputs: two 192x192 references (RandomState(3) uint8) and distorted copies (+ Gaussian noise, sigma 20,
RandomState(4), clipped); stored as uint8 with the key lists and shapes (not the weights) and the outputs.
``--write`` saves them for tests/test_model_iqt.py; the script also runs iqarena's IQT and prints max |diff|.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from iqarena.backbones import seeded_state_dict
from iqarena.models.iqt import IQT, public_state_dict

PIPAL = {"n_enc_seq": 21 * 21, "n_dec_seq": 21 * 21, "n_layer": 1, "d_hidn": 128, "i_pad": 0, "d_ff": 1024,
         "d_MLP_head": 128, "n_head": 4, "d_head": 128, "dropout": 0.1, "emb_dropout": 0.1, "layer_norm_epsilon": 1e-12,
         "n_output": 1, "crop_size": 192}  # the public code's "model for PIPAL (NTIRE2021 Challenge)"
DEEP = {**PIPAL, "n_layer": 2, "d_hidn": 64, "d_head": 24, "d_ff": 96, "d_MLP_head": 48}
OURS = {"pipal": {}, "deep": {"layers": 2, "dim": 64, "head_dim": 24, "ff": 96, "mlp": 48}}
SEEDS = {"backbone": 0, "pipal": 1, "deep": 2}
USED = ("conv2d_1a.", "conv2d_2a.", "conv2d_2b.", "conv2d_3b.", "conv2d_4a.", "mixed_5b.", "repeat.")


def inputs() -> tuple[np.ndarray, np.ndarray]:
    ref = np.random.RandomState(3).randint(0, 256, size=(2, 3, 192, 192)).astype(np.uint8)
    noise = np.random.RandomState(4).normal(0, 20, size=ref.shape)
    dist = np.clip(ref + noise, 0, 255).round().astype(np.uint8)
    return dist, ref


def shapes(sd: dict, keep=lambda k: True) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(v.shape)) for k, v in sd.items() if keep(k)]


def load_anse(git_dir: Path, tmp: Path):
    for path in ("model/backbone.py", "model/model_main.py"):
        text = subprocess.run(["git", "-C", str(git_dir), "show", f"HEAD:{path}"], check=True,
                              capture_output=True, text=True).stdout
        (tmp / Path(path).name).write_text(text)
    sys.path.insert(0, str(tmp))
    import backbone
    import model_main
    return backbone, model_main


def anse_outputs(bb_mod, main_mod, backbone_sd, regressors, dist, ref) -> dict[str, torch.Tensor]:
    net = bb_mod.InceptionResNetV2(num_classes=1001)
    net.load_state_dict({**net.state_dict(), **backbone_sd})
    net.eval()
    save = bb_mod.SaveOutput()
    for layer in net.modules():
        if isinstance(layer, (bb_mod.Mixed_5b, bb_mod.Block35)):
            layer.register_forward_hook(save)

    def feats(x):
        net(x)
        f = torch.cat([save.outputs[i] for i in (0, 2, 4, 6, 8, 10)], dim=1)
        save.clear()
        return f

    out = {}
    with torch.no_grad():
        f_ref, f_dis = feats(ref), feats(dist)
        for name, (config, sd) in regressors.items():
            model = main_mod.IQARegression(types.SimpleNamespace(**config))
            model.load_state_dict(sd)
            model.eval()
            n, seq = dist.shape[0], config["n_enc_seq"] + 1
            enc, dec = torch.ones(n, seq), torch.ones(n, seq)
            out[name] = model(enc, f_ref - f_dis, dec, f_ref).squeeze(1)
    return out


def pyiqa_outputs(backbone_sd, regressor_sd, dist, ref) -> torch.Tensor:
    import timm
    from pyiqa.archs import iqt_arch

    create = timm.create_model
    timm.create_model = lambda name, pretrained=False, **kw: create(name, pretrained=False, **kw)
    try:
        model = iqt_arch.IQT(config_dataset="pipal")
    finally:
        timm.create_model = create
    sd = model.state_dict()
    sd.update({f"backbone.{k}": v for k, v in backbone_sd.items()})
    sd.update({f"regressor.{k}": v for k, v in regressor_sd.items()})
    model.load_state_dict(sd)
    model.eval()
    with torch.no_grad():
        f_dis = model.get_backbone_feature(model.preprocess(dist))
        f_ref = model.get_backbone_feature(model.preprocess(ref))
        n = dist.shape[0]
        return model.regressor(model.enc_inputs.expand(n, -1), f_ref - f_dis, model.dec_inputs.expand(n, -1),
                               f_ref).squeeze(1)


def ours(backbone_sd, regressor_sd, options, dist, ref) -> torch.Tensor:
    model = IQT(pretrained=False, **options).eval()
    sd = {f"backbone.{k}": v for k, v in backbone_sd.items()}
    sd.update(public_state_dict(regressor_sd))
    missing = model.load_state_dict(sd, strict=False)
    assert not missing.unexpected_keys and set(missing.missing_keys) <= {"label_mean", "label_std"}, missing
    with torch.no_grad():
        return model.score(dist, ref)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--anse-git", type=Path, required=True, help="git directory of an anse3832/IQT snapshot")
    ap.add_argument("--write", type=Path, help="save inputs, key lists and outputs for the test")
    args = ap.parse_args()
    torch.manual_seed(0)
    d8, r8 = inputs()
    dist, ref = (torch.from_numpy(a).float() / 255 for a in (d8, r8))
    with tempfile.TemporaryDirectory() as tmp:
        bb_mod, main_mod = load_anse(args.anse_git, Path(tmp))
        full = bb_mod.InceptionResNetV2(num_classes=1001).state_dict()
        bb_shapes = shapes(full, lambda k: k.startswith(USED))
        import timm
        timm_keys = [k for k in timm.create_model("inception_resnet_v2", pretrained=False).state_dict()
                     if k.startswith(USED)]
        assert timm_keys == [k for k, _ in bb_shapes], "timm's and Cadene's key orders differ"
        backbone_sd = seeded_state_dict(dict(bb_shapes), SEEDS["backbone"])
        reg_shapes, regressors = {}, {}
        for name, config in (("pipal", PIPAL), ("deep", DEEP)):
            reg_shapes[name] = shapes(main_mod.IQARegression(types.SimpleNamespace(**config)).state_dict())
            regressors[name] = (config, seeded_state_dict(dict(reg_shapes[name]), SEEDS[name]))
        # anse3832 is given (N, 3, H, W) in [-1, 1], as its Normalize(0.5, 0.5) makes them
        anse = anse_outputs(bb_mod, main_mod, backbone_sd, regressors, dist * 2 - 1, ref * 2 - 1)
    pyiqa = pyiqa_outputs(backbone_sd, regressors["pipal"][1], dist, ref)
    mine = {name: ours(backbone_sd, regressors[name][1], OURS[name], dist, ref) for name in regressors}
    for name in regressors:
        print(f"{name}: anse3832 {anse[name].tolist()}  iqarena {mine[name].tolist()}  "
              f"max |diff| {(anse[name] - mine[name]).abs().max().item():.3g}")
    print(f"pipal: pyiqa {pyiqa.tolist()}  max |diff| vs iqarena {(pyiqa - mine['pipal']).abs().max().item():.3g}, "
          f"vs anse3832 {(pyiqa - anse['pipal']).abs().max().item():.3g}")
    if args.write:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"dist": torch.from_numpy(d8), "ref": torch.from_numpy(r8), "seeds": SEEDS,
                    "backbone_shapes": bb_shapes, "regressor_shapes": reg_shapes, "options": OURS,
                    "anse3832": anse, "pyiqa": {"pipal": pyiqa}}, args.write)
        print(f"wrote {args.write} ({args.write.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
