"""Speed of iqarena's metrics against pyiqa and piq, measured in the same run.

Each side runs in its own interpreter (the peers need torch 2.14.1 + torchvision, which cannot live in
the project's environment): iqarena in the project's Python, pyiqa and piq in PEERS_PYTHON (default
/tmp/peers/bin/python, see ../shared/GUIDE.md). All sides score the same images, the five bundled
512x384 TID2013 pairs (batch 16 repeats them), with the same thread count. For every (metric, side,
batch) the script reports the median wall time of several repetitions after warm-up, the ratio
iqarena / fastest peer, and each side's largest deviation from the official values where given.

    python benchmarks/speed.py                        # all shared metrics, CPU, 2 threads
    python benchmarks/speed.py -m ssim -m fsim --reps 9 --device cuda --markdown docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "src" / "iqarena" / "sample"
OFFICIAL = ROOT / "tests" / "data" / "official_scores.csv"
NAMES = ["I03", "I04", "I06", "I08", "I19"]

# iqarena name -> how each peer computes the same quantity (None: the peer does not have it).
PYIQA = {"psnr": "psnr", "ssim": "ssim", "ms_ssim": "ms_ssim", "cw_ssim": "cw_ssim", "fsimc": "fsim",
         "gmsd": "gmsd", "vif": "vif", "nlpd": "nlpd", "mad": "mad", "vsi": "vsi", "niqe": "niqe",
         "brisque": "brisque", "piqe": "piqe", "lpips": "lpips", "lpips_vgg": "lpips-vgg", "dists": "dists",
         "pieapp": "pieapp", "wadiqam_fr": "wadiqam_fr"}
PIQ = {"psnr": ("psnr", {}), "ssim": ("ssim", {}), "ms_ssim": ("multi_scale_ssim", {}),
       "fsim": ("fsim", {"chromatic": False}), "fsimc": ("fsim", {"chromatic": True}), "gmsd": ("gmsd", {}),
       "ms_gmsd": ("multi_scale_gmsd", {}), "vifp": ("vif_p", {}), "srsim": ("srsim", {}), "vsi": ("vsi", {}),
       "iw_ssim": ("information_weighted_ssim", {}), "brisque": ("brisque", {})}
NO_REFERENCE = {"niqe", "brisque", "piqe"}


# ---- worker: runs inside one side's interpreter ---------------------------------------------------

def _load_images(batch: int):
    import numpy as np
    import torch
    from PIL import Image

    def load(sub):
        arrs = [np.asarray(Image.open(SAMPLE / sub / f"{n}.png").convert("RGB"), dtype=np.float32) / 255 for n in NAMES]
        x = torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).contiguous()
        reps = -(-batch // len(NAMES))
        return x.repeat(reps, 1, 1, 1)[:batch].contiguous()

    return load("dist"), load("ref")


def _build(side: str, name: str, device: str):
    """A callable (dist, ref) -> tensor of scores, or raise if the side cannot run this metric."""
    import torch

    if side == "iqarena":
        import iqarena

        m = iqarena.create_metric(name, device=device)
        return (lambda d, r: m(d)) if name in NO_REFERENCE else m
    if side == "pyiqa":
        import pyiqa

        m = pyiqa.create_metric(PYIQA[name], device=torch.device(device), as_loss=False)
        return (lambda d, r: m(d)) if name in NO_REFERENCE else m
    if side == "piq":
        import piq

        fn_name, kwargs = PIQ[name]
        fn = getattr(piq, fn_name)
        if name in NO_REFERENCE:
            return lambda d, r: fn(d, data_range=1.0, reduction="none")
        return lambda d, r: fn(d, r, data_range=1.0, reduction="none", **kwargs)
    raise ValueError(side)


def worker(side: str, metrics: list[str], batches: list[int], reps: int, device: str, threads: int,
           max_s: float, clock: str) -> None:
    import torch

    now = time.process_time if clock == "cpu" else time.perf_counter

    torch.set_num_threads(threads)
    images = {b: _load_images(b) for b in batches}
    for name in metrics:
        per_image_s = None
        for b in batches:
            rec = {"side": side, "metric": name, "batch": b}
            if per_image_s is not None and per_image_s * b * (reps + 1) > max_s:
                rec["error"] = f"skipped: about {per_image_s * b:.0f} s per call ({reps + 1} calls over the {max_s:.0f} s cap)"
                print(json.dumps(rec), flush=True)
                continue
            try:
                fn = _build(side, name, device)
                d, r = (t.to(device) for t in images[b])
                times = []
                with torch.no_grad():
                    t0 = now()
                    scores = fn(d, r)  # warm-up (and the values)
                    warm = now() - t0
                    n = reps if warm * reps <= max_s else max(3, int(max_s / max(warm, 1e-9)))
                    for _ in range(n):
                        if device.startswith("cuda"):
                            torch.cuda.synchronize()
                        t0 = now()
                        fn(d, r)
                        if device.startswith("cuda"):
                            torch.cuda.synchronize()
                        times.append(now() - t0)
                rec["ms"] = 1000 * statistics.median(times)
                per_image_s = statistics.median(times) / b
                rec["scores"] = [float(v) for v in torch.as_tensor(scores).flatten()[:5].cpu()]
            except Exception as exc:  # a peer without the metric's files offline, or without the metric
                rec["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"
            print(json.dumps(rec), flush=True)


# ---- orchestrator ---------------------------------------------------------------------------------

def _official() -> dict[str, list[float]]:
    with OFFICIAL.open(newline="") as fh:
        return {row["metric"]: [float(row[f"{n}.bmp"]) for n in NAMES] for row in csv.DictReader(fh)}


def _run_side(python: str, side: str, metrics, batches, reps, device, threads, max_s, clock) -> list[dict]:
    cmd = [python, __file__, "--worker", side, "--reps", str(reps), "--device", device, "--threads", str(threads),
           "--max-seconds", str(max_s), "--clock", clock]
    for m in metrics:
        cmd += ["-m", m]
    for b in batches:
        cmd += ["--batch", str(b)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    recs = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 and not recs:
        print(f"{side} failed:\n{out.stderr[-2000:]}", file=sys.stderr)
    return recs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-m", "--metric", action="append", help="iqarena metric names (default: every registered one)")
    ap.add_argument("--batch", action="append", type=int, help="batch sizes (default 1 and 16)")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="wall time, or CPU time of the process (all threads; steadier on a busy machine)")
    ap.add_argument("--max-seconds", type=float, default=120.0,
                    help="skip a larger batch whose estimated time (from the smaller one) exceeds this")
    ap.add_argument("--peers-python", default=os.environ.get("PEERS_PYTHON", "/tmp/peers/bin/python"))
    ap.add_argument("--markdown", type=Path, help="also write the table to this Markdown file")
    ap.add_argument("--json", type=Path, help="also write every record to this JSON file")
    ap.add_argument("--render", type=Path, nargs="+", metavar="JSON",
                    help="only print the table of earlier --json files (later files replace earlier records)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    a = ap.parse_args()
    batches = a.batch or [1, 16]
    if a.worker:
        worker(a.worker, a.metric, batches, a.reps, a.device, a.threads, a.max_seconds, a.clock)
        return

    if a.render:
        merged = {}
        for f in a.render:
            for r in json.loads(f.read_text()):
                merged[(r["side"], r["metric"], r["batch"])] = r
        recs = list(merged.values())
        metrics = a.metric or sorted({r["metric"] for r in recs})
        batches = a.batch or sorted({r["batch"] for r in recs})
        print(render(recs, metrics, batches, a))
        return

    import iqarena

    metrics = a.metric or iqarena.list_metrics()
    if a.metric is None:
        metrics = [m for m in metrics if iqarena.metrics.registry.is_available(iqarena.get_info(m))]
    recs = _run_side(sys.executable, "iqarena", metrics, batches, a.reps, a.device, a.threads, a.max_seconds, a.clock)
    if Path(a.peers_python).exists():
        recs += _run_side(a.peers_python, "pyiqa", [m for m in metrics if m in PYIQA], batches, a.reps, a.device, a.threads, a.max_seconds, a.clock)
        recs += _run_side(a.peers_python, "piq", [m for m in metrics if m in PIQ], batches, a.reps, a.device, a.threads, a.max_seconds, a.clock)
    else:
        print(f"no peers interpreter at {a.peers_python}: timing iqarena alone", file=sys.stderr)
    recs = [{**r, **_conditions(a)} for r in recs]  # each record says how it was measured, for --render
    table = render(recs, metrics, batches, a)
    print(table)
    if a.markdown:
        a.markdown.write_text(table)
    if a.json:
        a.json.write_text(json.dumps(recs, indent=1))


def _conditions(a) -> dict:
    """How this invocation measures: stored with every record of --json."""
    import torch

    return {"device": a.device, "threads": a.threads, "clock": a.clock, "reps": a.reps, "torch": torch.__version__}


def render(recs, metrics, batches, a) -> str:
    official = _official()
    by = {(r["side"], r["metric"], r["batch"]): r for r in recs}

    def cell(side, m, b):
        r = by.get((side, m, b))
        if r is None:
            return "—"
        if "error" in r:
            return "skip" if r["error"].startswith("skipped") else "n/a"
        return f"{r['ms']:.1f}"

    def dev(side, m):
        r = by.get((side, m, max(batches)))  # the largest batch holds all five pairs
        if not r or "scores" not in r or m not in official:
            return ""
        err = max(abs(s - o) / max(abs(o), 1e-12) for s, o in zip(r["scores"], official[m]))
        return f"{100 * err:.2g}%"

    # the conditions recorded with the iqarena records (files from --json), else this invocation's
    c = next((r for r in recs if r["side"] == "iqarena" and "threads" in r), None) or _conditions(a)
    clock = "CPU time of the process" if c["clock"] == "cpu" else "wall time"
    lines = [f"Device: {c['device']}, {c['threads']} threads, {clock}, torch {c['torch']} (iqarena side); median of {c['reps']} "
             "runs after one warm-up (at least 3 where a call is slow); milliseconds per batch of 512x384 pairs. Ratio = iqarena / fastest peer "
             "(below 1: iqarena faster). Max dev = largest relative deviation from the official values on the "
             "five pairs (from the largest batch) (iqarena / pyiqa / piq), where official values exist.", ""]
    head = "| metric | batch | iqarena ms | pyiqa ms | piq ms | ratio | max dev (iqarena / pyiqa / piq) |"
    lines += [head, "|---|---:|---:|---:|---:|---:|---|"]
    for m in metrics:
        for b in batches:
            ours = by.get(("iqarena", m, b), {})
            peers = [by.get((s, m, b), {}) for s in ("pyiqa", "piq")]
            peer_ms = [p["ms"] for p in peers if "ms" in p]
            ratio = f"{ours['ms'] / min(peer_ms):.2f}" if "ms" in ours and peer_ms else ""
            devs = " / ".join(dev(s, m) or "—" for s in ("iqarena", "pyiqa", "piq")) if b == batches[0] else ""
            lines.append(f"| {m} | {b} | {cell('iqarena', m, b)} | {cell('pyiqa', m, b)} | {cell('piq', m, b)} | "
                         f"{ratio} | {devs} |")
    errors = sorted({f"{r['side']} {r['metric']}: {r['error']}" for r in recs if "error" in r})
    if errors:
        lines += ["", "Not run (n/a, skip):", ""] + [f"- {e}" for e in errors]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
