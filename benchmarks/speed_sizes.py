"""Time and peak memory of the shared metrics at 512x384 (batch 1 and 16), 1920x1080 and 3840x2160, at one
thread and at torch's default thread count, against pyiqa and piq in the same run.

Every side runs in its own interpreter (iqarena in the project's Python, the peers in PEERS_PYTHON, see
../shared/GUIDE.md), one process per (side, thread setting), the metrics one after another. The pairs: the
bundled I03 reference resized (bilinear) to the size, and a copy with seeded Gaussian noise (sigma 0.05),
the same numbers on every side. Per record and round: the median wall time of ``--reps`` calls after one
warm-up (fewer when a call is slow, at least 3), and the median over ``--mem-calls`` further calls of the peak
extra resident memory (the kernel's peak RSS of the process during the call, VmHWM reset through
/proc/self/clear_refs just before it, minus the RSS then, after freed memory has been given back with
glibc's malloc_trim). The whole set runs ``--rounds``
times, the sides in alternating order (iqarena first, then last); each record keeps its best round, in time
and in memory, because both move with the machine's load and the allocator's state from run to run (about
1.5x at 4K on a 2-core machine) and the lower value is the one the code, not the moment, decides. Speed rows
are compared with the fastest peer, memory with the leanest.

    python benchmarks/speed_sizes.py --json benchmarks/results-sizes.json --markdown docs/benchmarks-sizes.md
    python benchmarks/speed_sizes.py -m gmsd -m fsim --case 1920x1080x1 --rounds 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import speed  # noqa: E402  (the peers' names for each metric, and how each side builds one)

CASES = ("512x384x1", "512x384x16", "1920x1080x1", "3840x2160x1")
#: the classic full-reference metrics iqarena shares with a peer. MAD and CW-SSIM (minutes per 4K pair on the
#: peers' side) and the deep and no-reference metrics are timed at 512x384 by speed.py; ``-m`` adds any of them
METRICS = ("psnr", "ssim", "ssim_downsample", "ms_ssim", "fsim", "fsimc", "gmsd", "ms_gmsd", "vif", "vifp", "nlpd",
           "srsim", "vsi", "iw_ssim")
#: metric rows that are an option of a registered metric: (iqarena name and options, pyiqa, piq)
VARIANTS = {"ssim": (("ssim", {}), ("ssim", {}), ("ssim", {"downsample": False})),  # piq downsamples by default
            "ssim_downsample": (("ssim", {"downsample": True}), ("ssim", {"downsample": True}),
                                ("ssim", {"downsample": True}))}
PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE


def _trim() -> None:
    """Give freed memory back to the system (glibc keeps large freed blocks resident after the first calls), so
    that the measured call's own allocations show in the RSS."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _hwm() -> int | None:
    """The process's peak RSS since the last reset (VmHWM), in bytes; None where /proc has no such line."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class PeakRSS:
    """The largest RSS while the block runs: the kernel's own peak (VmHWM, reset through /proc/self/clear_refs
    before the block), exact however briefly a tensor lives; where that reset is not allowed, a thread
    sampling /proc/self/statm every 0.2 ms (which can miss allocations shorter than that)."""

    def __enter__(self):
        self.base = self.peak = _rss()
        self._thread = None
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            self.exact = _hwm() is not None
        except OSError:
            self.exact = False
        if not self.exact:
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def _poll(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss())
            time.sleep(0.0002)

    def __exit__(self, *exc):
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        self.peak = max(self.peak, _rss(), (_hwm() or 0) if self.exact else 0)

    @property
    def extra_mb(self) -> float:
        return (self.peak - self.base) / 2 ** 20


def _pairs(case: str):
    import torch
    import torch.nn.functional as F
    from PIL import Image
    import numpy as np

    w, h, b = (int(v) for v in case.split("x"))
    ref = torch.from_numpy(np.asarray(Image.open(speed.SAMPLE / "ref" / "I03.png").convert("RGB"),
                                      dtype=np.float32) / 255).permute(2, 0, 1)[None]
    ref = F.interpolate(ref, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)
    g = torch.Generator().manual_seed(0)
    dist = (ref + 0.05 * torch.randn(ref.shape, generator=g)).clamp(0, 1)
    return dist.repeat(b, 1, 1, 1).contiguous(), ref.repeat(b, 1, 1, 1).contiguous()


def _build(side: str, name: str):
    if name not in VARIANTS:
        return speed._build(side, name, "cpu")
    own, pyiqa_form, piq_form = VARIANTS[name]
    if side == "iqarena":
        import iqarena
        return iqarena.create_metric(own[0], **own[1])
    if side == "pyiqa":
        import pyiqa
        import torch
        return pyiqa.create_metric(pyiqa_form[0], device=torch.device("cpu"), as_loss=False, **pyiqa_form[1])
    import piq
    fn = getattr(piq, piq_form[0])
    return lambda d, r: fn(d, r, data_range=1.0, reduction="none", **piq_form[1])


def worker(side: str, metrics: list[str], cases: list[str], threads: int, reps: int, mem_calls: int,
           max_s: float) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)
    for case in cases:
        d, r = _pairs(case)
        for name in metrics:
            rec = {"side": side, "metric": name, "case": case, "threads": torch.get_num_threads()}
            try:
                fn = _build(side, name)
                with torch.no_grad():
                    t0 = time.perf_counter()
                    fn(d, r)
                    warm = time.perf_counter() - t0
                    if warm > max_s:
                        raise TimeoutError(f"skipped: one call took {warm:.0f} s (cap {max_s:.0f} s)")
                    times = []
                    for _ in range(reps if warm * reps <= max_s else 3):
                        t0 = time.perf_counter()
                        fn(d, r)
                        times.append(time.perf_counter() - t0)
                    peaks = []
                    for _ in range(mem_calls if warm * (reps + mem_calls) <= max_s else 1):
                        _trim()
                        with PeakRSS() as mem:
                            fn(d, r)
                        peaks.append(mem.extra_mb)
                rec.update(ms=1000 * statistics.median(times), mb=statistics.median(peaks))
            except Exception as exc:  # a peer without the metric (or its files offline), or over the cap
                rec["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"
            print(json.dumps(rec), flush=True)


def _run(python: str, side: str, metrics, cases, threads, reps, mem_calls, max_s) -> list[dict]:
    if not metrics:
        return []
    cmd = [python, __file__, "--worker", side, "--threads", str(threads), "--reps", str(reps),
           "--mem-calls", str(mem_calls), "--max-seconds", str(max_s)] + [a for m in metrics for a in ("-m", m)] + [a for c in cases for a in ("--case", c)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    else:
        env.pop("OMP_NUM_THREADS", None)
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    recs = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0:
        print(f"{side} (threads {threads}) stopped:\n{out.stderr[-1500:]}", file=sys.stderr)
    return recs


def _peer_names(side: str, metrics) -> list[str]:
    table = speed.PYIQA if side == "pyiqa" else speed.PIQ
    return [m for m in metrics if m in table or m in VARIANTS]


def best_rounds(recs: list[dict]) -> dict:
    """One record per (side, metric, case, threads): the least time and the least memory over its rounds."""
    by: dict = {}
    for r in recs:
        key = (r["side"], r["metric"], r["case"], r["threads"])
        if "ms" not in r:
            by.setdefault(key, r)
            continue
        best = by.get(key)
        if best is None or "ms" not in best:
            by[key] = {**r, "rounds": 1}
        else:
            by[key] = {**best, "ms": min(best["ms"], r["ms"]), "mb": min(best["mb"], r["mb"]),
                       "rounds": best["rounds"] + 1}
    return by


def render(recs: list[dict], metrics, cases) -> str:
    by = best_rounds(recs)
    thread_counts = sorted({r["threads"] for r in recs})
    lines = ["| metric | size x batch | threads | iqarena ms / MB | pyiqa ms / MB | piq ms / MB | time ratio | memory ratio |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    behind = []
    for m in metrics:
        for case in cases:
            for t in thread_counts:
                row = [by.get((s, m, case, t), {}) for s in ("iqarena", "pyiqa", "piq")]
                if "ms" not in row[0]:
                    continue
                peers = [p for p in row[1:] if "ms" in p]
                cells = [f"{p['ms']:.1f} / {p['mb']:.0f}" if "ms" in p else ("skip" if "skipped" in p.get("error", "")
                                                                               else "—") for p in row]
                tr = row[0]["ms"] / min(p["ms"] for p in peers) if peers else None
                mr = max(row[0]["mb"], 1) / max(min(p["mb"] for p in peers), 1) if peers else None
                if tr is not None and tr > 1:
                    behind.append(f"{m} {case} {t} threads: {tr:.2f}")
                lines.append(f"| {m} | {case.rsplit('x', 1)[0]} x {case.rsplit('x', 1)[1]} | {t} | " + " | ".join(cells)
                             + f" | {'' if tr is None else f'{tr:.2f}'} | {'' if mr is None else f'{mr:.2f}'} |")
    lines += ["", "Behind the fastest peer: " + ("; ".join(behind) if behind else "none") + "."]
    # memory per pixel: iqarena's peak extra memory over the pixels of one pair, at the large sizes
    big = [c for c in cases if int(c.split("x")[0]) * int(c.split("x")[1]) >= 1920 * 1080]
    if big:
        lines += ["", "Peak extra memory per pixel of the pair (iqarena; bytes, from the MB above): flat across sizes "
                  "means memory grows linearly with the pixel count.", "",
                  "| metric | " + " | ".join(f"{c.rsplit('x', 1)[0]}, {t} thr" for c in big for t in thread_counts) + " |",
                  "|---|" + "---:|" * (len(big) * len(thread_counts))]
        for m in metrics:
            cells = []
            for c in big:
                w, h, b = (int(v) for v in c.split("x"))
                for t in thread_counts:
                    r = by.get(("iqarena", m, c, t), {})
                    cells.append(f"{r['mb'] * 2 ** 20 / (w * h * b):.0f}" if "mb" in r else "—")
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
    errors = sorted({f"{r['side']} {r['metric']} {r['case']} {r['threads']} thr: {r['error']}" for r in recs
                     if "error" in r and "ms" not in by[(r["side"], r["metric"], r["case"], r["threads"])]})
    if errors:
        lines += ["", "Not measured:", ""] + [f"- {e}" for e in errors]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-m", "--metric", action="append", help=f"metrics (default: {', '.join(METRICS)})")
    ap.add_argument("--case", action="append", help=f"WxHxBATCH cases (default: {', '.join(CASES)})")
    ap.add_argument("--threads", action="append", type=int,
                    help="thread counts; 0 = torch's default (default: 1 and 0)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--mem-calls", type=int, default=3, help="calls whose peak memory is measured (median)")
    ap.add_argument("--rounds", type=int, default=2, help="repetitions of the whole set, sides in alternating order")
    ap.add_argument("--max-seconds", type=float, default=60.0, help="skip a record whose warm-up call exceeds this")
    ap.add_argument("--peers-python", default=os.environ.get("PEERS_PYTHON", "/tmp/peers/bin/python"))
    ap.add_argument("--json", type=Path)
    ap.add_argument("--markdown", type=Path)
    ap.add_argument("--render", type=Path, nargs="+", metavar="JSON", help="only render earlier --json files")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    a = ap.parse_args()
    metrics, cases = a.metric or list(METRICS), a.case or list(CASES)
    if a.worker:
        worker(a.worker, metrics, cases, a.threads[0] if a.threads else 0, a.reps, a.mem_calls, a.max_seconds)
        return
    if a.render:
        recs = [r for f in a.render for r in json.loads(f.read_text())]
        print(render(recs, metrics, cases))
        return
    sides = [("iqarena", sys.executable, metrics)]
    if Path(a.peers_python).exists():
        sides += [(side, a.peers_python, _peer_names(side, metrics)) for side in ("pyiqa", "piq")]
    recs = []
    for rnd in range(a.rounds):
        for threads in a.threads or [1, 0]:
            for side, python, names in (sides if rnd % 2 == 0 else sides[::-1]):
                got = _run(python, side, names, cases, threads, a.reps, a.mem_calls, a.max_seconds)
                recs += [{**r, "round": rnd + 1} for r in got]
        if a.json:  # a long run leaves what it has measured so far
            a.json.write_text(json.dumps(recs, indent=1))
    table = render(recs, metrics, cases)
    print(table)
    if a.json:
        a.json.write_text(json.dumps(recs, indent=1))
    if a.markdown:
        a.markdown.write_text(table)


if __name__ == "__main__":
    main()
