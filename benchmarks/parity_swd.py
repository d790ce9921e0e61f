"""SWD parity: the authors' public base network (HaomingCai/PIPAL-dataset, codes/models/modules/Our_IQA.py,
AlexNet and VGG16) on seeded weights and seeded image pairs, for tests/test_model_swd.py to match with
src/iqarena/models/swd.py at ``pool="max", warp=0`` (the SWD layer and l2 pooling are not in their code).

Runs in the peers environment (torch + torchvision), never in iqarena's:

    HF_HUB_OFFLINE=1 /tmp/peers/bin/python benchmarks/parity_swd.py --repo /work/.mirror/HaomingCai+PIPAL-dataset/repo

``--repo``: a git directory of https://github.com/HaomingCai/PIPAL-dataset (the ``fetch`` snapshot; its
``codes/models/modules/Our_IQA.py`` and ``module_util.py`` are read with ``git show`` into a temporary
package and imported, never copied into iqarena). Their constructor asks torchvision for the ImageNet weights
and moves the model to CUDA; the script gives torchvision's constructors ``weights=None`` and makes their
``cuda()`` a no-op, then loads ``iqarena.backbones.seeded_state_dict`` over their state_dict's keys and shapes.
Their input is ImageNet-normalised (their dataset's ``transforms.Normalize``); iqarena's model normalises
inside, so the file stores the [0, 1] images.

Writes tests/data/models/swd_parity.pt: per network the seed, the ordered (key, shape) list of their
state_dict, the images and their output distance (``forward(ref, dist)``, shape (N, 1)); no weights.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from iqarena.backbones import seeded_state_dict  # plain numpy + torch, no torchvision

SEED = 0
SHAPE = (2, 3, 64, 80)
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def load_authors(repo: Path, where: Path):
    pkg = where / "models" / "modules"
    pkg.mkdir(parents=True)
    for folder in (where / "models", pkg):
        (folder / "__init__.py").write_text("")
    for name in ("Our_IQA.py", "module_util.py"):
        text = subprocess.run(["git", "-C", str(repo), "show", f"HEAD:codes/models/modules/{name}"], check=True,
                              capture_output=True, text=True).stdout
        (pkg / name).write_text(text)
    sys.path.insert(0, str(where))
    import torchvision.models as tvm

    plain = {"alexnet": tvm.alexnet, "vgg16": tvm.vgg16}
    tvm.alexnet = lambda pretrained=False, **kw: plain["alexnet"](weights=None)  # no download
    tvm.vgg16 = lambda pretrained=False, **kw: plain["vgg16"](weights=None)
    from models.modules import Our_IQA

    Our_IQA.Our_IQA.cuda = lambda self, *a, **kw: self  # CPU
    return Our_IQA.Our_IQA


def normalise(x: torch.Tensor) -> torch.Tensor:
    """Their dataset's ``transforms.Normalize`` with ImageNet's mean and deviation."""
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, default=Path("/work/.mirror/HaomingCai+PIPAL-dataset/repo"))
    ap.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "models" / "swd_parity.pt")
    args = ap.parse_args()
    commit = subprocess.run(["git", "-C", str(args.repo), "rev-parse", "HEAD"], check=True, capture_output=True,
                            text=True).stdout.strip()
    blob = {"repo": "https://github.com/HaomingCai/PIPAL-dataset", "commit": commit,
            "file": "codes/models/modules/Our_IQA.py", "nets": {}}
    with tempfile.TemporaryDirectory() as tmp:
        authors = load_authors(args.repo, Path(tmp))
        for i, (ours, theirs) in enumerate((("alex", "Alex"), ("vgg", "VGG16"))):
            seed = SEED + i
            net = authors(FENet=theirs, tune=False, control_bias=True, real_lpips=False).eval()
            keys = [(k, tuple(v.shape)) for k, v in net.state_dict().items()]
            net.load_state_dict(seeded_state_dict(dict(keys), seed=seed))
            g = torch.Generator().manual_seed(seed)
            ref = torch.rand(SHAPE, generator=g)
            dist = (ref + 0.15 * torch.randn(SHAPE, generator=g)).clamp(0, 1)
            with torch.no_grad():
                out = net(normalise(ref), normalise(dist))
            blob["nets"][ours] = {"seed": seed, "keys": keys, "ref": ref, "dist": dist, "distance": out}
            print(f"{theirs}: distance {out.flatten().tolist()}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(blob, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
