"""Parity of iqarena's ViT-B/8 and AHIQ with timm's ViT, the AHIQ authors' modules and pyiqa's AHIQ.

Run in the peers' environment (torch 2.14.1, torchvision 0.29.1, timm 1.0.31, pyiqa 0.1.16), with the
authors' repository fetched (github.com/IIGROUP/AHIQ, MIT; its git directory, read with ``git show``):

    HF_HUB_OFFLINE=1 /tmp/peers/bin/python benchmarks/parity_ahiq.py \
        [--ahiq-repo /work/.mirror/IIGROUP+AHIQ/repo] [--write]

``--write`` records tests/data/vit_b8_keys.json (timm's ``vit_base_patch8_224`` key names and shapes),
tests/data/models/vit_parity.pt and tests/data/models/ahiq_parity.pt (inputs, the reference outputs, the
seeds and the ordered key/shape lists that rebuild the weights; no weights). No file is downloaded: every
network gets ``iqarena.backbones.seeded_state_dict`` weights (numpy's legacy RandomState: the same numbers
in any environment), with LayerNorm scales moved to 1 + small noise (``stand_in``), one seed per part.

Cases:

- ``vit/b8``: timm's ``vit_base_patch8_224`` (12 blocks, ``dynamic_img_size=True``) on a 1x3x32x32 input:
  its position embeddings are resampled from 28x28 to 4x4 as timm does. Logits and blocks 0, 4, 11.
- ``vit/small``: timm's ``VisionTransformer`` with patch 8, dim 64, depth 2, 4 heads, img_size 32 (the AHIQ
  small setting's kind), at its own size (2x3x32x32) and at 44x36 (a 4x5 grid: iqarena's model is given the
  44x36 image, whose last 4 rows and columns fill no patch; timm, which refuses such sides, its 40x32 part).
- ``ahiq/modules``: the full-size AHIQ (ViT-B/8 blocks 0-4, ResNet-50 layer1, the authors' ``deform_fusion``
  and ``Pixel_Prediction`` from model/deform_regressor.py), wired as the authors' train.py does (forward hooks
  on every timm ``Block`` and ``Bottleneck``, script/extract_feature.py's concatenations, offsets from the
  reference's ViT map for both images) on two 64x64 pairs normalised as data/pipal.py does ((x - 0.5) / 0.5);
  timm's ``dynamic_img_size`` stands in for the code's fixed 28x28 grid. Scores, score and weight maps.
- ``ahiq/pyiqa``: pyiqa's ``AHIQ`` (``num_crop=1``, ``default_mean = default_std = 0.5``: the authors'
  normalisation) on one 224x224 pair, its own fixed size. pyiqa's ``timm.create_model(..., pretrained=True)``
  calls are made with ``pretrained=False`` (no download); the seeded parts are loaded over them.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from iqarena.backbones import seeded_state_dict  # noqa: E402

DATA = ROOT / "tests" / "data"
SEEDS = {"vit_b8": 31, "vit_small": 32, "vit": 41, "cnn": 42, "deform_net": 43, "regressor": 44, "input": 5}
SMALL_VIT = {"img_size": 32, "patch_size": 8, "embed_dim": 64, "depth": 2, "num_heads": 4, "num_classes": 10}
VIT_BLOCKS = (0, 1, 2, 3, 4)
LAYER_NORM = re.compile(r"(^|\.)norm\d?\.weight$")


def stand_in(shapes: list[tuple[str, list[int]]], seed: int) -> dict[str, torch.Tensor]:
    """``seeded_state_dict`` over the ordered (key, shape) list, LayerNorm scales (``norm``, ``norm1``,
    ``norm2`` weights) shifted by 1 so that the transformer's residual branches stay alive."""
    sd = seeded_state_dict({k: tuple(s) for k, s in shapes}, seed)
    return {k: v + 1 if LAYER_NORM.search(k) else v for k, v in sd.items()}


def uniform(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Float32 images in [0, 1] from numpy's legacy RandomState (the same in any environment)."""
    return torch.from_numpy(np.random.RandomState(seed).random_sample(shape).astype(np.float32))


def ahiq_parts(sd_keys: dict[str, list[int]]) -> dict[str, list[tuple[str, list[int]]]]:
    """The reference model's tensors that reach the score, per part, in its own order and with its names
    (pyiqa's: ``vit.``, ``resnet50.``, ``deform_net.``, ``regressor.``): ViT embeddings and blocks 0-4, the
    ResNet stem and layer1, the two heads."""
    last = max(VIT_BLOCKS)
    keep = {
        "vit": lambda k: k.startswith(("vit.cls_token", "vit.pos_embed", "vit.patch_embed."))
        or (k.startswith("vit.blocks.") and int(k.split(".")[2]) <= last),
        "cnn": lambda k: k.startswith(("resnet50.conv1.", "resnet50.bn1.", "resnet50.layer1.")),
        "deform_net": lambda k: k.startswith("deform_net."),
        "regressor": lambda k: k.startswith("regressor."),
    }
    return {part: [(k, list(s)) for k, s in sd_keys.items() if f(k)] for part, f in keep.items()}


def ahiq_weights(parts: dict[str, list[tuple[str, list[int]]]]) -> dict[str, torch.Tensor]:
    """Seeded tensors of every part, under the reference's (pyiqa's) names."""
    out = {}
    for part, shapes in parts.items():
        out.update(stand_in(shapes, SEEDS[part]))
    return out


# ----------------------------------------------------------------------------------------------- peers side

def authors_modules(repo: str):
    """model/deform_regressor.py of the authors' repository, imported from the git directory."""
    text = subprocess.run(["git", "--git-dir", repo, "show", "HEAD:model/deform_regressor.py"], check=True,
                          capture_output=True, text=True).stdout
    folder = Path(tempfile.mkdtemp(prefix="ahiq_src_"))
    (folder / "ahiq_deform_regressor.py").write_text(text)
    sys.path.insert(0, str(folder))
    import ahiq_deform_regressor as m

    return m


def vit_cases() -> tuple[dict, dict]:
    import timm
    from timm.models.vision_transformer import VisionTransformer as TimmViT

    with torch.device("meta"):
        meta = timm.create_model("vit_base_patch8_224", pretrained=False)
    keys = {k: list(v.shape) for k, v in meta.state_dict().items()}
    out = {"seeds": {"b8": SEEDS["vit_b8"], "small": SEEDS["vit_small"]}, "small_config": SMALL_VIT}

    b8 = timm.create_model("vit_base_patch8_224", pretrained=False, dynamic_img_size=True).eval()
    b8_shapes = [(k, list(v.shape)) for k, v in b8.state_dict().items()]
    b8.load_state_dict(stand_in(b8_shapes, SEEDS["vit_b8"]))
    x = uniform((1, 3, 32, 32), SEEDS["input"])
    out["b8"] = {"shapes": b8_shapes, "input": x, **run_timm(b8, x, (0, 4, 11))}

    small = TimmViT(**SMALL_VIT, dynamic_img_size=True).eval()
    small_shapes = [(k, list(v.shape)) for k, v in small.state_dict().items()]
    small.load_state_dict(stand_in(small_shapes, SEEDS["vit_small"]))
    out["small"] = {"shapes": small_shapes}
    for tag, shape in (("native", (2, 3, 32, 32)), ("odd", (1, 3, 36, 44))):
        x = uniform(shape, SEEDS["input"] + len(tag))
        cut = x[..., : shape[2] // 8 * 8, : shape[3] // 8 * 8]  # timm refuses sides that are not multiples
        out["small"][tag] = {"input": x, **run_timm(small, cut, (0, 1))}
    return keys, out


def run_timm(model, x: torch.Tensor, blocks: tuple[int, ...]) -> dict:
    seen = []
    hooks = [b.register_forward_hook(lambda m, i, o: seen.append(o)) for b in model.blocks]
    with torch.no_grad():
        logits = model(x)
    for h in hooks:
        h.remove()
    return {"logits": logits, "blocks": {i: seen[i] for i in blocks}}


def _no_download(create):
    def create_model(name, pretrained=False, **kw):
        return create(name, pretrained=False, **kw)
    return create_model


def pyiqa_model():
    import timm
    from pyiqa.archs import ahiq_arch

    ahiq_arch.timm.create_model = _no_download(timm.create_model)
    return ahiq_arch.AHIQ(num_crop=1, default_mean=[0.5] * 3, default_std=[0.5] * 3, pretrained=False).eval()


def ahiq_cases(repo: str) -> dict:
    import timm
    from timm.models.resnet import Bottleneck
    from timm.models.vision_transformer import Block

    ref_model = pyiqa_model()
    their = {k: list(v.shape) for k, v in ref_model.state_dict().items()}
    parts = ahiq_parts(their)
    weights = ahiq_weights(parts)
    missing = ref_model.load_state_dict(weights, strict=False)
    assert not missing.unexpected_keys
    out = {"seeds": {p: SEEDS[p] for p in parts}, "parts": parts, "vit_blocks": list(VIT_BLOCKS)}

    # the authors' modules and train.py's wiring, on timm backbones that take other sizes
    m = authors_modules(repo)
    deform = m.deform_fusion(SimpleNamespace(patch_size=8)).eval()
    regressor = m.Pixel_Prediction().eval()
    deform.load_state_dict({k[len("deform_net."):]: v for k, v in weights.items() if k.startswith("deform_net.")})
    regressor.load_state_dict({k[len("regressor."):]: v for k, v in weights.items() if k.startswith("regressor.")})
    vit = timm.create_model("vit_base_patch8_224", pretrained=False, dynamic_img_size=True).eval()
    vit.load_state_dict({k[4:]: v for k, v in weights.items() if k.startswith("vit.")}, strict=False)
    resnet = timm.create_model("resnet50", pretrained=False).eval()
    resnet.load_state_dict({k[9:]: v for k, v in weights.items() if k.startswith("resnet50.")}, strict=False)
    saved = []
    for layer in [*resnet.modules(), *vit.modules()]:
        if isinstance(layer, (Bottleneck, Block)):
            layer.register_forward_hook(lambda mod, i, o: saved.append(o))
    maps = {}
    regressor.conv.register_forward_hook(lambda mod, i, o: maps.__setitem__("score", o))
    regressor.conv_attent.register_forward_hook(lambda mod, i, o: maps.__setitem__("weight", o))

    def vit_feature(x):
        vit(x)
        feat = torch.cat([saved[i][:, 1:, :] for i in VIT_BLOCKS], dim=2)
        saved.clear()
        b, _, c = feat.shape
        return feat.transpose(1, 2).reshape(b, c, x.shape[-2] // 8, x.shape[-1] // 8)

    def cnn_feature(x):
        resnet(x)
        feat = torch.cat([saved[0], saved[1], saved[2]], dim=1)
        saved.clear()
        return feat

    dist, ref = uniform((2, 3, 64, 64), SEEDS["input"]), uniform((2, 3, 64, 64), SEEDS["input"] + 1)
    ref = 0.5 * dist + 0.5 * ref  # related images: the difference features are not noise alone
    with torch.no_grad():
        d, r = (dist - 0.5) / 0.5, (ref - 0.5) / 0.5
        vit_dis, vit_ref = vit_feature(d), vit_feature(r)
        cnn_dis = deform(cnn_feature(d), vit_ref)
        cnn_ref = deform(cnn_feature(r), vit_ref)
        pred = regressor(vit_dis, vit_ref, cnn_dis, cnn_ref)
    out["modules"] = {"dist": dist, "ref": ref, "score": pred.squeeze(1), "score_map": maps["score"],
                      "weight_map": maps["weight"]}

    # pyiqa's model end to end at its fixed 224x224
    seed = SEEDS["input"] + 10
    dist = uniform((1, 3, 224, 224), seed)
    ref = 0.5 * dist + 0.5 * uniform((1, 3, 224, 224), seed + 1)
    with torch.no_grad():
        score = ref_model(dist, ref).squeeze(1)
    out["pyiqa"] = {"input_seed": seed, "size": 224, "score": score}
    return out


# ----------------------------------------------------------------------------------------------- ours

def ours_vit(case: dict, config: dict | None = None):
    from iqarena.backbones import VisionTransformer, from_state_dict

    cfg = dict(config or {"img_size": 224, "patch_size": 8, "embed_dim": 768, "depth": 12, "num_heads": 12})
    return from_state_dict(lambda: VisionTransformer(**cfg), stand_in(case["shapes"], case["seed"])).eval()


def ours_ahiq(record: dict):
    from iqarena.models.ahiq import AHIQ, authors_state_dict

    model = AHIQ(pretrained=False).eval()
    result = model.load_state_dict(authors_state_dict(ahiq_weights(record["parts"])), strict=False)
    assert not result.unexpected_keys and set(result.missing_keys) == {"label_mean", "label_std"}, result
    return model


def compare(vit_rec: dict, ahiq_rec: dict) -> None:
    torch.set_num_threads(1)
    diffs = {}
    b8 = ours_vit({**vit_rec["b8"], "seed": vit_rec["seeds"]["b8"]})
    with torch.no_grad():
        x = vit_rec["b8"]["input"]
        diffs["vit/b8 logits"] = (b8(x) - vit_rec["b8"]["logits"]).abs().max().item()
        got = b8.block_outputs(x, [0, 4, 11])
        diffs["vit/b8 blocks"] = max((g - vit_rec["b8"]["blocks"][i]).abs().max().item() for g, i in zip(got, (0, 4, 11)))
    small = ours_vit({**vit_rec["small"], "seed": vit_rec["seeds"]["small"]}, SMALL_VIT)
    for tag in ("native", "odd"):
        rec = vit_rec["small"][tag]
        with torch.no_grad():
            diffs[f"vit/small {tag}"] = (small(rec["input"]) - rec["logits"]).abs().max().item()
    model = ours_ahiq(ahiq_rec)
    m = ahiq_rec["modules"]
    with torch.no_grad():
        s, w = model.score_maps(m["dist"], m["ref"])
        diffs["ahiq/modules score"] = (model(m["dist"], m["ref"]) - m["score"]).abs().max().item()
        diffs["ahiq/modules maps"] = max((s - m["score_map"]).abs().max().item(), (w - m["weight_map"]).abs().max().item())
        p = ahiq_rec["pyiqa"]
        seed = p["input_seed"]
        dist = uniform((1, 3, 224, 224), seed)
        ref = 0.5 * dist + 0.5 * uniform((1, 3, 224, 224), seed + 1)
        t = time.perf_counter()
        got = model(dist, ref)
        diffs["ahiq/pyiqa 224 score"] = (got - p["score"]).abs().max().item()
        print(f"our AHIQ, one 224x224 pair, 1 thread: {time.perf_counter() - t:.2f} s")
    for k, v in diffs.items():
        print(f"max |diff| {k}: {v:.3g}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ahiq-repo", default="/work/.mirror/IIGROUP+AHIQ/repo")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    keys, vit_rec = vit_cases()
    ahiq_rec = ahiq_cases(args.ahiq_repo)
    compare(vit_rec, ahiq_rec)
    if args.write:
        import timm

        meta = {"_source": f"timm {timm.__version__}, torch {torch.__version__}: "
                           "timm.create_model('vit_base_patch8_224').state_dict() (benchmarks/parity_ahiq.py)"}
        lines = ",\n".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in keys.items())
        (DATA / "vit_b8_keys.json").write_text(
            "{\n" + f'"_source": {json.dumps(meta["_source"])},\n"vit_base_patch8_224": {{\n{lines}\n}}\n}}\n')
        (DATA / "models").mkdir(exist_ok=True)
        torch.save(vit_rec, DATA / "models" / "vit_parity.pt")
        torch.save(ahiq_rec, DATA / "models" / "ahiq_parity.pt")
        for f in ("vit_b8_keys.json", "models/vit_parity.pt", "models/ahiq_parity.pt"):
            print(f"wrote {DATA / f} ({(DATA / f).stat().st_size} bytes)")


if __name__ == "__main__":
    main()
