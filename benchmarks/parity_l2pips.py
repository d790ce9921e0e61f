"""Parity of iqarena's L2PIPS with the authors' model (``v9``, github.com/YuLvS/L2PIPS, Apache-2.0).

Run in the peers' environment (torch + torchvision), with the authors' repository fetched as a bare git
directory (``fetch github:YuLvS/L2PIPS``):

    /tmp/peers/bin/python benchmarks/parity_l2pips.py [--repo /work/.mirror/YuLvS+L2PIPS/repo] \
        [--write tests/data/models/l2pips_parity.pt]

The authors' ``models/modules/{architecture,attns,common}.py`` and ``models/test_libs.py`` are read from
the git directory into a temporary package and imported as they are, except that ``resnet50_backbone``
(which downloads the ImageNet file) is replaced by their own ``ResNetBackbone`` without weights. Every
tensor of their model except the fixed DCT filters then gets ``iqarena.backbones.seeded_state_dict``
weights (the same numbers in any environment), and the model scores two 224x224 pairs in eval mode (the
only size their code takes). The DS modules ``project0``, ``project1`` and ``project3`` (the three
layouts: PReLU, three stride-2 blocks, the block of three convolutions) are also run alone on seeded
inputs, with weights seeded for their own keys (a test of a few seconds). ``--write`` stores the key names and shapes (in order: the seeded numbers
follow it), the seed, the uint8 images and their outputs; tests/test_model_l2pips.py rebuilds the same
weights, renames them with ``iqarena.models.l2pips.from_authors`` and compares.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from iqarena.backbones import seeded_state_dict

SEED = 12
FILES = ("models/modules/architecture.py", "models/modules/attns.py", "models/modules/common.py",
         "models/test_libs.py")
#: the DS modules also compared alone (fast test): map index -> (channels, side); inputs standard normal
#: numpy RandomState(SEED + k) draws, dist then ref, (2, channels, side, side) float32
MODULES = {0: (64, 112), 1: (256, 56), 3: (1024, 14)}
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def authors_model(repo: Path):
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    pkg = Path(tempfile.mkdtemp(prefix="l2pips_"))
    for f in FILES:
        text = subprocess.run(["git", "-C", str(repo), "show", f"HEAD:{f}"], capture_output=True, text=True,
                              check=True).stdout
        (pkg / f).parent.mkdir(parents=True, exist_ok=True)
        (pkg / f).write_text(text)
    for d in ("models", "models/modules"):
        (pkg / d / "__init__.py").write_text("")
    sys.path.insert(0, str(pkg))
    from models import test_libs
    from models.modules import architecture

    test_libs.resnet50_backbone = lambda pretrained=True: architecture.ResNetBackbone(
        architecture.Bottleneck, [3, 4, 6, 3])
    return test_libs.v9().eval(), commit


def pairs(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two 224x224 references (uint8 noise, smoothed so the maps have structure) and distorted copies."""
    rs = np.random.RandomState(seed)
    ref = rs.randint(0, 256, size=(2, 3, 56, 56)).astype(np.float32)
    ref = np.kron(ref, np.ones((1, 1, 4, 4), np.float32))  # blocky 224x224 content
    noise = rs.normal(0, 1, size=ref.shape).astype(np.float32) * np.array([8, 30], np.float32)[:, None, None, None]
    dist = np.clip(ref + noise, 0, 255)
    return dist.round().astype(np.uint8), ref.round().astype(np.uint8)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", type=Path, default=Path("/work/.mirror/YuLvS+L2PIPS/repo"))
    ap.add_argument("--write", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)
    net, commit = authors_model(args.repo)
    own = net.state_dict()
    shapes = OrderedDict((k, tuple(v.shape)) for k, v in own.items() if not k.endswith("dct_layer.weight"))
    result = net.load_state_dict(seeded_state_dict(shapes, SEED), strict=False)
    assert all(k.endswith("dct_layer.weight") for k in result.missing_keys) and not result.unexpected_keys
    dist8, ref8 = pairs(SEED)
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    dist = (torch.from_numpy(dist8).float() / 255 - mean) / std
    ref = (torch.from_numpy(ref8).float() / 255 - mean) / std
    with torch.no_grad():
        t = time.perf_counter()
        out = net(dist, ref)[:, 0]
        seconds = time.perf_counter() - t
    print(f"authors' v9 ({commit[:7]}), {sum(v.numel() for v in own.values()):,} tensor elements: {out.tolist()} "
          f"({seconds:.2f} s, 1 thread)")
    modules = {}
    for k, (channels, size) in MODULES.items():
        rs = np.random.RandomState(SEED + k)
        fd = torch.from_numpy(rs.standard_normal((2, channels, size, size)).astype(np.float32))
        fr = torch.from_numpy(rs.standard_normal((2, channels, size, size)).astype(np.float32))
        project = getattr(net, f"project{k}")
        sub = OrderedDict((n, tuple(v.shape)) for n, v in project.state_dict().items()
                          if not n.endswith("dct_layer.weight"))
        project.load_state_dict(seeded_state_dict(sub, SEED + k), strict=False)
        with torch.no_grad():
            modules[k] = {"shapes": [(n, list(s)) for n, s in sub.items()], "seed": SEED + k,
                          "out": project(net._rearrange(fd, fr)).flatten(1)}
        print(f"project{k} ({channels} channels, {size}x{size}): output norm {modules[k]['out'].norm():.4f}")
    if args.write:
        torch.save({"source": f"github.com/YuLvS/L2PIPS@{commit}", "torch": str(torch.__version__), "seed": SEED,
                    "shapes": [(k, list(s)) for k, s in shapes.items()], "dist": torch.from_numpy(dist8),
                    "ref": torch.from_numpy(ref8), "out": out, "modules": modules}, args.write)
        print(f"wrote {args.write}")


if __name__ == "__main__":
    main()
