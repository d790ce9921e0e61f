"""RADN parity: the authors' model (IIGROUP/RADN, model/RADN.py) on seeded weights and a seeded image pair,
for tests/test_model_radn.py to match with src/iqarena/models/radn.py.

Runs in the peers environment (torch + torchvision), never in iqarena's:

    HF_HUB_OFFLINE=1 /tmp/peers/bin/python benchmarks/parity_radn.py --repo /work/.mirror/IIGROUP+RADN/repo

``--repo``: a git directory of https://github.com/IIGROUP/RADN (the ``fetch`` snapshot; its ``model/*.py`` are
read with ``git show`` into a temporary package and imported, never copied into iqarena). Their
``model/Deform.py`` calls ``torch.ops.torchvision.deform_conv2d`` with torchvision 0.8's positional
signature, which torchvision >= 0.9 changed (mask arguments); the script swaps that one function for
``torchvision.ops.deform_conv2d`` (the same operation, no mask). Their patches come from PIL crops
(``NonOverlappingCropPatches``: row by row from the top-left); here the same crops are cut from the tensor.

Writes tests/data/models/radn_parity.pt: the seed and the ordered (key, shape) list of their state_dict
(``iqarena.backbones.seeded_state_dict`` over it regenerates the weights), the uint8 images, and their
output; no weights are stored.
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

FILES = ("__init__.py", "RADN.py", "Deform.py", "Nonlocal.py", "BlurPooling.py", "L2Pooling.py")
SEED = 0
SHAPE = (2, 3, 64, 96)  # two pairs, 2 x 3 patches of 32 pixels each
PATCH = 32


def load_authors(repo: Path, where: Path):
    pkg = where / "radn_authors"
    pkg.mkdir()
    for name in FILES:
        text = "" if name == "__init__.py" else subprocess.run(
            ["git", "-C", str(repo), "show", f"HEAD:model/{name}"], check=True, capture_output=True, text=True).stdout
        (pkg / name).write_text(text)
    sys.path.insert(0, str(where))
    import torchvision.ops
    from radn_authors import RADN, Deform

    def deform_conv2d(input, offset, weight, bias=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1)):
        return torchvision.ops.deform_conv2d(input, offset, weight, bias, stride, padding, dilation)

    Deform.deform_conv2d = deform_conv2d  # torchvision >= 0.9's operator signature (see the module docstring)
    return RADN.RADN


def patches(x: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[-2:]
    out = [x[:, :, i:i + PATCH, j:j + PATCH] for i in range(0, h, PATCH) for j in range(0, w, PATCH)]
    return torch.stack(out, dim=1)  # (N, P, C, 32, 32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, default=Path("/work/.mirror/IIGROUP+RADN/repo"))
    ap.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "models" / "radn_parity.pt")
    args = ap.parse_args()
    commit = subprocess.run(["git", "-C", str(args.repo), "rev-parse", "HEAD"], check=True, capture_output=True,
                            text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        authors = load_authors(args.repo, Path(tmp))
        torch.manual_seed(SEED)
        net = authors(weighted_average=True, pooling=0).eval()
        keys = [(k, tuple(v.shape)) for k, v in net.state_dict().items()]
        net.load_state_dict(seeded_state_dict(dict(keys), seed=SEED))
        g = torch.Generator().manual_seed(SEED)
        ref = torch.randint(0, 256, SHAPE, generator=g, dtype=torch.uint8)
        noise = torch.randint(-40, 41, SHAPE, generator=g, dtype=torch.int16)
        dist = (ref.to(torch.int16) + noise).clamp(0, 255).to(torch.uint8)
        with torch.no_grad():
            q = net((patches(dist.float() / 255), patches(ref.float() / 255)))[:, 0]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"seed": SEED, "keys": keys, "dist": dist, "ref": ref, "score": q, "patch": PATCH,
                "source": f"https://github.com/IIGROUP/RADN@{commit} model/RADN.py, torch {torch.__version__}"},
               args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e3:.1f} kB): scores {q.tolist()}")


if __name__ == "__main__":
    main()
