"""BlurPool parity for pieapp_alexnet (team tsubota): the reference anti-aliasing code
(github.com/adobe/antialiased-cnns, antialiased_cnns/blurpool.py) on seeded maps, for
tests/test_model_pieapp_alexnet.py to match with ``MaxBlurPool`` in src/iqarena/models/pieapp_alexnet.py.

The team's own code is not public, so only this building block has a reference to match: the paper's
MaxBlurPool, ``nn.MaxPool2d(3, stride=1)`` then ``BlurPool(C, filt_size=k, stride=2)`` (reflect padding),
as antialiased_cnns/alexnet.py puts it in place of AlexNet's max pooling, for filter sizes 1-5 and maps of
odd and even sides (AlexNet's 15 and 7 at 64-pixel patches among them).

Runs in the peers environment (torch), never in iqarena's:

    HF_HUB_OFFLINE=1 /tmp/peers/bin/python benchmarks/parity_pieapp_alexnet.py \
        --repo /work/.mirror/adobe+antialiased-cnns/repo

``--repo``: a git directory of https://github.com/adobe/antialiased-cnns (CC BY-NC-SA 4.0; the ``fetch``
snapshot). ``blurpool.py`` is read with ``git show`` into a temporary folder and imported, never copied into
iqarena; its unused ``from IPython import embed`` gets a stub module.

Writes tests/data/models/pieapp_alexnet_parity.pt: the seeded inputs and their outputs per filter size.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
SEED = 0
SIDES = (15, 7, 12, 5)
SIZES = (1, 2, 3, 4, 5)


def load_reference(repo: Path, where: Path):
    text = subprocess.run(["git", "-C", str(repo), "show", "HEAD:antialiased_cnns/blurpool.py"], check=True,
                          capture_output=True, text=True).stdout
    (where / "aa_blurpool.py").write_text(text)
    sys.modules.setdefault("IPython", types.SimpleNamespace(embed=lambda *a, **k: None))
    sys.path.insert(0, str(where))
    import aa_blurpool

    return aa_blurpool.BlurPool


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, default=Path("/work/.mirror/adobe+antialiased-cnns/repo"))
    ap.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "models" / "pieapp_alexnet_parity.pt")
    args = ap.parse_args()
    commit = subprocess.run(["git", "-C", str(args.repo), "rev-parse", "HEAD"], check=True, capture_output=True,
                            text=True).stdout.strip()
    g = torch.Generator().manual_seed(SEED)
    inputs = {side: torch.randn(2, 4, side, side, generator=g) for side in SIDES}
    blob = {"repo": "https://github.com/adobe/antialiased-cnns", "commit": commit,
            "file": "antialiased_cnns/blurpool.py", "inputs": inputs, "outputs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        reference = load_reference(args.repo, Path(tmp))
        for size in SIZES:
            pool = nn.Sequential(nn.MaxPool2d(3, stride=1), reference(4, filt_size=size, stride=2))
            with torch.no_grad():
                blob["outputs"][size] = {side: pool(x) for side, x in inputs.items()}
            print(f"filter {size}: shapes {[tuple(v.shape[-2:]) for v in blob['outputs'][size].values()]}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(blob, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
