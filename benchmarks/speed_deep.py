"""CPU time of iqarena's deep metrics against the original packages and pyiqa, on the same stand-in weights.

    HF_HUB_OFFLINE=1 /tmp/peers/bin/python benchmarks/speed_deep.py [--pairs 2] [--repeat 2] [--pieapp-repo CHECKOUT]

One thread, process CPU time (robust on a shared machine), the best of ``--repeat`` runs, the first
``--pairs`` calibration pairs at full size (384x512). Weights: the seeded stand-ins of parity_deep.py.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import parity_deep as P


def cpu_time(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--pieapp-repo", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)
    d, r = (t[: args.pairs] for t in P.images()["full"])
    import tempfile

    import lpips
    import lpips.pretrained_networks as pn
    import pyiqa
    from DISTS_pytorch import DISTS_pt

    rows = []
    with tempfile.TemporaryDirectory() as t, torch.no_grad():
        tmp = Path(t)
        for net, tv in (("alex", "alexnet"), ("vgg", "vgg16"), ("squeeze", "squeezenet1_1")):
            sd = P.stand_in(tv)
            torch.save(sd, tmp / f"{tv}.pth")
            setattr(pn.tv, tv, P.tv_stub(tv, sd))
            orig = lpips.LPIPS(net=net, verbose=False).eval()
            ours = P.LPIPS(net, backbone=tmp / f"{tv}.pth").eval()
            rows.append((f"lpips_{net}" if net != "alex" else "lpips", "lpips 0.1.4",
                         cpu_time(lambda: orig(d, r, normalize=True), args.repeat),
                         cpu_time(lambda: ours(d, r), args.repeat)))
        DISTS_pt.models.vgg16 = P.tv_stub("vgg16", P.stand_in("vgg16"))
        orig = DISTS_pt.DISTS(load_weights=False).eval()
        ours = P.DISTS(backbone=tmp / "vgg16.pth").eval()
        rows.append(("dists", "DISTS_pytorch 0.1", cpu_time(lambda: orig(r, d), args.repeat),
                     cpu_time(lambda: ours(d, r), args.repeat)))
        sd = P.pieapp_stand_in()
        torch.save(sd, tmp / "pieapp.pth")
        ours = P.PieAPP(weights=tmp / "pieapp.pth").eval()
        t_ours = cpu_time(lambda: ours(d, r), args.repeat)
        peer = pyiqa.create_metric("pieapp", pretrained_model_path=str(tmp / "pieapp.pth"), device="cpu")
        rows.append(("pieapp", "pyiqa 0.1.16", cpu_time(lambda: peer(d, r), args.repeat), t_ours))
        if args.pieapp_repo:
            rows.append(("pieapp", "authors' test procedure",
                         cpu_time(lambda: P.original_pieapp(args.pieapp_repo, sd, d, r, 27), 1), t_ours))
    print(f"{'metric':14s} {'other side':26s} {'other s':>8s} {'ours s':>8s} {'ratio':>6s}   ({args.pairs} pairs 384x512, 1 thread, CPU time)")
    for name, other, a, b in rows:
        print(f"{name:14s} {other:26s} {a:8.2f} {b:8.2f} {a / b:6.2f}")


if __name__ == "__main__":
    main()
