"""Speed and memory of iqarena's learned models against comparable pyiqa models, measured in the same run.

Each side runs in its own interpreter (pyiqa needs torch 2.14.1 + torchvision, which cannot live in the
project's environment, see ../shared/GUIDE.md): iqarena in the project's .venv, pyiqa 0.1.16 in
PEERS_PYTHON (default /tmp/peers/bin/python). Every (model, measurement, repetition) runs in a fresh
process, so its peak memory is its own; the sides alternate (repetition 0 starts with iqarena, 1 with
pyiqa, ...) and the table gives medians over the repetitions. CPU, torch's default thread count (or
``--threads``), wall time.

Measurements, for every model:
  b1, bN    inference (eval, no_grad, the public call: ``iqarena.create_metric(...)(x)`` /
            ``pyiqa.create_metric(...)(x)``) on 512x384 images (the bundled TID2013 pairs, repeated),
            batch 1 and batch 16, after 2 warm-up calls; reported in ms per image
  train     one optimiser step (forward + backward + AdamW, MSE to random targets) on 8 crops of
            384x384 (no-reference) or 8 pairs of 224x224 (full-reference), after 2 warm-up steps;
            reported in images (pairs) per second. Trained parameters: iqarena_nr with its default
            frozen trunk the head only (the trunk still runs forward: no feature cache), iqarena_nr and
            iqarena_fr with train_from=6 the last trunk stages too; pyiqa's models what their training
            trains (all parameters for HyperIQA, DBCNN's fine-tuning stage and MUSIQ; AHIQ, LPIPS and
            DISTS keep their ImageNet backbones frozen, as their arches do). HyperIQA and AHIQ train
            on 224x224 crops only (fixed input size of the arch).
  peak MiB  the peak resident memory (ru_maxrss, its high-water mark reset through
            /proc/self/clear_refs after the model and inputs are built) minus the resident memory
            just before the measurement: what the measurement itself adds, warm-up included.

Weights: nothing is downloaded. iqarena_nr uses ``trained=False`` (random head, ImageNet trunk from the
installed efficientnet package), iqarena_fr its defaults. pyiqa's models get random weights: timm and
torchvision constructors are forced to ``pretrained=False`` / ``weights=None``, pyiqa's
``load_pretrained_network`` is replaced by a no-op and torch.hub downloads raise; speed does not depend
on the weight values.

    python benchmarks/speed_models.py --json benchmarks/results-models-DATE.json      # both sides, 5 reps
    python benchmarks/speed_models.py --quick --reps 1                                 # smoke: 128x128, batch 4
    .venv/bin/python benchmarks/speed_models.py --side iqarena                         # one side only
    python benchmarks/speed_models.py --render benchmarks/results-models-DATE.json     # the table again
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "src" / "iqarena" / "sample"
NAMES = ["I03", "I04", "I06", "I08", "I19"]
MEASURES = ("p288", "b1", "bN", "train")
WARMUP = 2

# id -> (kind, options of create_metric, measurements, what trains, label)
IQARENA = {
    "iqarena_nr": ("nr", {"trained": False}, MEASURES, "head only (trunk frozen, train_from=7)",
                   "iqarena_nr"),
    "iqarena_nr_tf6": ("nr", {"trained": False, "train_from": 6}, ("train",), "head + trunk stage 6 and head conv",
                       "iqarena_nr train_from=6"),
    "iqarena_fr": ("fr", {"train_from": 6}, MEASURES, "heads + trunk stage 6 and head conv",
                   "iqarena_fr train_from=6"),
}
# the NTIRE 2021 teams' models (docs/models.md), full size, random weights (pretrained=False: nothing to
# download; speed does not depend on the values), test-time crops as their recipes (IQT and AHIQ: those of
# pyiqa's versions, so that both sides do the same work); batch 16 left out (their crops make it slow)
_TEAMS = ("p288", "b1", "train")
IQARENA.update({
    "iqt": ("fr", {"pretrained": False, "test_crop": 192, "test_layout": "random", "test_crops": 20}, _TEAMS,
            "as built (Inception-ResNet-v2 part + transformer)", "IQT (LIPT; 20 crops of 192)"),
    "ahiq": ("fr", {"pretrained": False, "test_crop": 224, "test_layout": "random", "test_crops": 20}, _TEAMS,
             "deform fusion + regressor (backbones frozen)", "AHIQ (20 crops of 224)"),
    "iqma": ("fr", {"pretrained": False}, _TEAMS, "as built", "IQMA (MT-GTD)"),
    "l2pips": ("fr", {"pretrained": False}, _TEAMS, "as built", "L2PIPS (Amaurotia)"),
    "radn": ("fr", {}, _TEAMS, "all (from scratch)", "RADN (THUIIGROUP1919)"),
    "mlt_yahaha": ("fr", {"pretrained": False}, _TEAMS, "as built", "multi-level transformer (Yahaha!)"),
    "asna": ("fr", {}, _TEAMS, "all", "ASNA (MACS; 288x288 only)"),
    "si_unet": ("fr", {}, _TEAMS, "all", "sensitivity UNet (SI Analytics)"),
    "pieapp_alexnet": ("fr", {"pretrained": False}, _TEAMS, "all", "PieAPP-AlexNet-BlurPool (tsubota)"),
    "swd": ("fr", {"pretrained": False}, _TEAMS, "channel weights (AlexNet frozen)", "SWD (organisers)"),
})
#: training crops where a model needs its own (ASNA's dense head: 288x288)
TRAIN_CROP = {"asna": 288}
# id -> (kind, pyiqa metric name, create_metric options, train crop size (None: as iqarena), make all
#        parameters trainable?, what trains, label)
PYIQA = {
    "hyperiqa": ("nr", "hyperiqa", {"pretrained": False}, 224, True, "all (ResNet-50 + hyper network)",
                 "HyperIQA (ResNet-50)"),
    "dbcnn": ("nr", "dbcnn", {"pretrained": False}, None, True, "all (fine-tuning stage: VGG-16 + SCNN + fc)",
              "DBCNN (VGG-16 + SCNN)"),
    "musiq": ("nr", "musiq", {"pretrained": False}, None, True, "all", "MUSIQ (koniq config)"),
    "ahiq": ("fr", "ahiq", {"pretrained": False}, 224, False,
             "deform fusion + regressor (ResNet-50, ViT-B/8 frozen)", "AHIQ (ResNet-50 + ViT-B/8)"),
    "lpips-vgg": ("fr", "lpips-vgg", {"pretrained": False}, None, False, "linear layers (VGG-16 frozen)",
                  "LPIPS-VGG"),
    "dists": ("fr", "dists", {"pretrained": False}, None, False, "alpha, beta (VGG-16 frozen)", "DISTS"),
    "iqt": ("fr", "iqt", {}, 192, False, "transformer + heads (its arch freezes nothing; Inception-ResNet-v2 "
            "frozen here as in iqarena's)", "IQT (pyiqa; 20 crops of 192)"),
}
SIDES = {"iqarena": IQARENA, "pyiqa": PYIQA}


def sizes(quick: bool) -> dict:
    """Image and batch sizes: the real run, or --quick (128x128 images and crops, batch 4)."""
    if quick:
        return {"h": 128, "w": 128, "bN": 4, "train_batch": 4, "nr_crop": 128, "fr_crop": 128, "pipal": 128}
    return {"h": 384, "w": 512, "bN": 16, "train_batch": 8, "nr_crop": 384, "fr_crop": 224, "pipal": 288}


# ---- one measurement, inside one side's interpreter -----------------------------------------------------

def _rss_kib() -> int:
    return int(re.search(r"VmRSS:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


def _reset_peak() -> bool:
    """Reset the peak-RSS high-water mark (Linux >= 4.0); ru_maxrss follows it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _images(batch: int, h: int, w: int):
    """(dist, ref): the bundled 512x384 pairs, repeated to ``batch``, cropped to h x w (top-left)."""
    import numpy as np
    import torch
    from PIL import Image

    def load(sub):
        arrs = [np.asarray(Image.open(SAMPLE / sub / f"{n}.png").convert("RGB"), dtype=np.float32) / 255
                for n in NAMES]
        x = torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2)
        x = x.repeat(-(-batch // len(NAMES)), 1, 1, 1)[:batch]
        return x[..., :h, :w].contiguous()

    return load("dist"), load("ref")


def _offline_pyiqa(arch_module: str) -> list[str]:
    """Make pyiqa build with random weights and no network; returns the list of skipped weight loads."""
    import importlib

    import timm
    import torch.hub
    import torchvision

    def no_download(*a, **k):
        raise RuntimeError(f"download attempted ({a[:1]}): this benchmark builds with random weights")

    torch.hub.load_state_dict_from_url = no_download
    torch.hub.download_url_to_file = no_download

    create = timm.create_model

    def create_model(*a, **k):
        k["pretrained"] = False
        return create(*a, **k)

    timm.create_model = create_model
    for name in ("vgg16", "alexnet", "squeezenet1_1", "resnet18", "resnet34", "resnet50"):
        ctor = getattr(torchvision.models, name)

        def random_ctor(*a, _ctor=ctor, **k):
            k.pop("weights", None)
            k.pop("pretrained", None)
            return _ctor(weights=None, **k)

        setattr(torchvision.models, name, random_ctor)

    skipped: list[str] = []

    def skip_load(net, path, *a, **k):
        skipped.append(f"{type(net).__name__}: {Path(str(path)).name}")

    import pyiqa.archs.arch_util as au

    au.load_pretrained_network = skip_load
    au.load_file_from_url = no_download
    mod = importlib.import_module(f"pyiqa.archs.{arch_module}")
    for attr, fn in (("load_pretrained_network", skip_load), ("load_file_from_url", no_download)):
        if hasattr(mod, attr):
            setattr(mod, attr, fn)
    return skipped


ARCH_MODULE = {"hyperiqa": "hypernet_arch", "dbcnn": "dbcnn_arch", "musiq": "musiq_arch", "ahiq": "ahiq_arch",
               "lpips-vgg": "lpips_arch", "dists": "dists_arch", "iqt": "iqt_arch"}


def _pyiqa_iqt():
    """pyiqa 0.1.16's IQT (PIPAL config: 20 random 192 crops), which create_metric does not list and whose
    regress_score returns before its last line (a TypeError): scored as that line means to."""
    import torch
    from pyiqa.archs import iqt_arch

    net = iqt_arch.IQT(config_dataset="pipal")

    def regress_score(self, dis, ref):
        f_dis = self.get_backbone_feature(self.preprocess(dis))
        f_ref = self.get_backbone_feature(self.preprocess(ref))
        n = dis.shape[0]
        return self.regressor(self.enc_inputs.expand(n, -1), f_ref - f_dis, self.dec_inputs.expand(n, -1), f_ref)

    net.regress_score = regress_score.__get__(net)
    for p in net.backbone.parameters():
        p.requires_grad_(False)
    return net, lambda d, r: net(d, r)


def _build(side: str, model: str):
    """-> (kind, infer(d, r), net, train_crop or None, prepare(d, r) -> train args, notes dict)."""
    import torch

    if side == "iqarena":
        import iqarena

        kind, options, _, trains, _ = IQARENA[model]
        name = model.split("_tf")[0]
        metric = iqarena.create_metric(name, device="cpu", **options)
        infer = (lambda d, r: metric(d)) if kind == "nr" else (lambda d, r: metric(d, r))
        notes = {"built": f'iqarena.create_metric("{name}", {", ".join(f"{k}={v!r}" for k, v in options.items())})',
                 "trains": trains, "test_time": (f"{options['test_crops']} {options['test_layout']} crops of "
                                                 f"{options['test_crop']}x{options['test_crop']}" if options.get("test_crop")
                                                 else "the whole image (test_crop=0)")}
        prepare = (lambda d, r: (d,)) if kind == "nr" else (lambda d, r: (d, r))
        return kind, infer, metric.net, TRAIN_CROP.get(model), prepare, notes

    kind, name, options, crop, train_all, trains, _ = PYIQA[model]
    skipped = _offline_pyiqa(ARCH_MODULE[model])
    import pyiqa

    if model == "iqt":
        net, infer = _pyiqa_iqt()
        notes = {"built": "pyiqa.archs.iqt_arch.IQT(config_dataset='pipal') [timm pretrained=False]",
                 "skipped_weight_loads": skipped, "trains": trains, "test_time": "20 random crops of 192x192"}
        return kind, infer, net, crop, (lambda d, r: (d, r)), notes
    metric = pyiqa.create_metric(name, device=torch.device("cpu"), **options)
    net = metric.net
    if train_all:
        for p in net.parameters():
            p.requires_grad_(True)
    infer = (lambda d, r: metric(d)) if kind == "nr" else (lambda d, r: metric(d, r))
    if model in ("hyperiqa", "ahiq"):
        test_time = f"{net.num_crop if model == 'hyperiqa' else net.crops} crops of 224x224 averaged"
    elif model == "musiq":
        test_time = "multi-scale patches (longer side 224, 384 and the original size)"
    else:
        test_time = "the whole image"
    notes = {"built": f'pyiqa.create_metric("{name}", {", ".join(f"{k}={v!r}" for k, v in options.items())}) '
                      f"[{type(net).__name__}; timm/torchvision pretrained=False]",
             "skipped_weight_loads": skipped, "trains": trains, "test_time": test_time}
    if model == "musiq":
        from pyiqa.data.multiscale_trans_util import get_multiscale_patches

        def prepare(d, r):  # MUSIQ trains on patches made by the data pipeline: made here, outside the timing
            return (get_multiscale_patches((d - 0.5) * 2, **net.data_preprocess_opts),)
    elif kind == "nr":
        def prepare(d, r):
            return (d,)
    else:
        def prepare(d, r):
            return (d, r)
    return kind, infer, net, crop, prepare, notes


def job(side: str, model: str, measure: str, quick: bool, inner: int, max_s: float, warmup: int = WARMUP) -> dict:
    """One measurement in this process: the record (times in seconds, memory in MiB)."""
    import torch

    torch.manual_seed(0)
    sz = sizes(quick)
    rec = {"side": side, "model": model, "measure": measure, "torch": torch.__version__,
           "threads": torch.get_num_threads(), "interop_threads": torch.get_num_interop_threads()}
    if side == "pyiqa":
        import pyiqa
        import timm
        import torchvision

        rec["versions"] = {"pyiqa": pyiqa.__version__, "timm": timm.__version__, "torchvision": torchvision.__version__}
    else:
        import iqarena

        rec["versions"] = {"iqarena": iqarena.__version__}
    t0 = time.perf_counter()
    kind, infer, net, fixed_crop, prepare, notes = _build(side, model)
    rec.update(kind=kind, build_s=time.perf_counter() - t0, **notes)
    rec["params"] = sum(p.numel() for p in net.parameters())
    rec["trainable"] = sum(p.numel() for p in net.parameters() if p.requires_grad)

    if measure == "train":
        batch = sz["train_batch"]
        crop = fixed_crop or sz["nr_crop" if kind == "nr" else "fr_crop"]
        d, r = _images(batch, crop, crop)
        args = prepare(d, r)
        params = [p for p in net.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=1e-4)
        target = torch.rand(batch)
        net.train()

        def call():
            opt.zero_grad(set_to_none=True)
            pred = net(*args)
            pred = (pred[0] if isinstance(pred, (tuple, list)) else pred).reshape(batch)
            loss = torch.nn.functional.mse_loss(pred, target)
            loss.backward()
            opt.step()
    else:
        batch = sz["bN"] if measure == "bN" else 1
        d, r = _images(batch, sz["pipal"], sz["pipal"]) if measure == "p288" else _images(batch, sz["h"], sz["w"])
        net.eval()

        def call():
            with torch.no_grad():
                infer(d, r)

    rec.update(batch=batch, input=f"{d.shape[-1]}x{d.shape[-2]}")
    gc.collect()
    rss0 = _rss_kib()
    rec["peak_reset"] = _reset_peak()
    t0 = time.perf_counter()
    for _ in range(warmup):
        call()
    warm = (time.perf_counter() - t0) / warmup
    n = inner if warm * inner <= max_s else 1
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    rec.update(s=statistics.median(times), times=times, warmup_s=warm,
               peak_mib=(peak - rss0) / 1024, rss_before_mib=rss0 / 1024, peak_abs_mib=peak / 1024)
    return rec


# ---- driver -------------------------------------------------------------------------------------------

def _run_job(python: str, side: str, model: str, measure: str, a) -> dict:
    cmd = [python, str(Path(__file__).resolve()), "--job", f"{side}:{model}:{measure}", "--inner", str(a.inner),
           "--max-seconds", str(a.max_seconds), "--warmup", str(a.warmup)] + (["--quick"] if a.quick else [])
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    if a.threads:
        env.update(OMP_NUM_THREADS=str(a.threads), MKL_NUM_THREADS=str(a.threads))
        cmd += ["--threads", str(a.threads)]
    base = {"side": side, "model": model, "measure": measure}
    try:
        out = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=a.timeout)
    except subprocess.TimeoutExpired:
        return {**base, "error": f"timeout: over {a.timeout:.0f} s"}
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    err = [ln for ln in out.stderr.strip().splitlines() if ln.strip()]
    return {**base, "error": f"exit {out.returncode}: {err[-1][:200] if err else 'no output'}"}


def _conditions(a, pythons: dict) -> dict:
    cpu = ""
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                   if ln.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], check=False,
                                capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    return {"date": datetime.datetime.now().isoformat(timespec="seconds"), "host": platform.node(), "cpu": cpu,
            "cpus": os.cpu_count(), "loadavg_start": os.getloadavg(), "reps": a.reps, "inner": a.inner,
            "quick": a.quick, "sizes": sizes(a.quick), "threads": a.threads or "torch default", "warmup": a.warmup,
            "clock": "wall", "pythons": pythons, "commit": commit}


def drive(a, sides: list[str], pythons: dict) -> dict:
    cond = _conditions(a, pythons)
    if cond["loadavg_start"][0] > 0.5:
        print(f"warning: load average {cond['loadavg_start'][0]:.2f} at the start: other work shares the CPUs, and "
              "with more threads than free cores the wall times grow many-fold; measure on an idle machine",
              file=sys.stderr)
    models = {s: [m for m in SIDES[s] if not a.model or m in a.model] for s in sides}
    recs, skip = [], {}
    for rep in range(a.reps):
        for side in (sides if rep % 2 == 0 else sides[::-1]):
            for model in models[side]:
                for measure in SIDES[side][model][2] if side == "iqarena" else MEASURES:
                    if a.measure and measure not in a.measure:
                        continue
                    if (side, model, measure) in skip:
                        rec = {"side": side, "model": model, "measure": measure, "error": skip[(side, model, measure)]}
                    else:
                        rec = _run_job(pythons[side], side, model, measure, a)
                    rec["rep"] = rep
                    recs.append(rec)
                    if "error" in rec:
                        msg = rec["error"]
                    else:
                        msg = (f"{rec['s'] * 1000:.1f} ms/call (batch {rec['batch']}), "
                               f"+{rec['peak_mib']:.0f} MiB peak")
                    print(f"[rep {rep}] {side:8s} {model:15s} {measure:5s} {msg}", file=sys.stderr, flush=True)
                    if measure == "b1" and "s" in rec:  # a batch-N call estimated over --max-seconds: skip it
                        est = rec["s"] * sizes(a.quick)["bN"] * (a.warmup + 1)
                        if est > a.max_seconds:
                            skip[(side, model, "bN")] = (f"skipped: about {est:.0f} s for warm-up and one call at batch "
                                                         f"{sizes(a.quick)['bN']} (over --max-seconds {a.max_seconds:.0f})")
    cond["loadavg_end"] = os.getloadavg()
    return {"conditions": cond, "records": recs}


# ---- table --------------------------------------------------------------------------------------------

def summarise(recs: list[dict]) -> dict:
    """(side, model, measure) -> median record fields over repetitions (or the error)."""
    groups: dict = {}
    for r in recs:
        groups.setdefault((r["side"], r["model"], r["measure"]), []).append(r)
    out = {}
    for key, rs in groups.items():
        ok = [r for r in rs if "s" in r]
        if not ok:
            out[key] = {"error": rs[0].get("error", "?")}
            continue
        s = statistics.median(r["s"] for r in ok)
        out[key] = {**ok[0], "s": s, "n": len(ok), "per_item_ms": 1000 * s / ok[0]["batch"],
                    "per_s": ok[0]["batch"] / s, "peak_mib": statistics.median(r["peak_mib"] for r in ok)}
    return out


def _count(n: int) -> str:
    return f"{n / 1e6:.2f} M" if n >= 100_000 else f"{n:,}"


def render(data: dict) -> str:
    c, summ = data["conditions"], summarise(data["records"])
    side_info = {}
    for r in data["records"]:
        if "torch" in r:
            side_info.setdefault(r["side"], (r["torch"], r["threads"], r.get("versions", {})))
    sz = c["sizes"]
    bn = sz["bN"]
    lines = [
        (f"Conditions: {c['date']}, {c['cpu']} ({c['cpus']} CPUs), load average {c['loadavg_start'][0]:.2f} at the "
         f"start, {c['loadavg_end'][0]:.2f} at the end; wall time; medians of {c['reps']} repetitions, each measurement "
         f"in a fresh process after {c.get('warmup', WARMUP)} warm-up calls{' (--quick)' if c['quick'] else ''}."),
        "Sides: " + "; ".join(f"{s}: torch {t}, {th} threads" + (
            ", " + ", ".join(f"{k} {v}" for k, v in sorted(v_.items())) if v_ else "")
            for s, (t, th, v_) in side_info.items()) + ".",
        (f"ms {sz['pipal']}x{sz['pipal']}: inference in ms per PIPAL-size pair at batch 1. "
         f"ms b1, ms b{bn}: inference in ms per {sz['w']}x{sz['h']} image at batch 1 and {bn}. train img/s: images "
         f"(pairs) per second of optimiser steps on batches of {sz['train_batch']} crops ({sz['nr_crop']}x{sz['nr_crop']} "
         f"NR, {sz['fr_crop']}x{sz['fr_crop']} FR; HyperIQA and AHIQ 224x224). Peak MiB: resident memory added by the "
         f"measurement (b1 / b{bn} / train). Ratio: iqarena's time / pyiqa's version of the same model (IQT, AHIQ), for iqarena's own models "
         "the fastest pyiqa model of the same kind "
         "(288 / b1 / bN / train; below 1: iqarena faster)."),
        "",
        (f"| model | side | kind | trains (parameters) | ms {sz['pipal']}x{sz['pipal']} | ms b1 | ms b{bn} | train img/s | "
         f"peak MiB ({sz['pipal']} / b1 / b{bn} / train) | ratio to the best peer |"),
        "|---|---|---|---|---:|---:|---:|---:|---|---|",
    ]

    def val(side, m, meas, field, fmt):
        r = summ.get((side, m, meas))
        if r is None:
            return "—"
        if "error" in r:
            return "skip" if r["error"].startswith("skipped") else "n/a"
        return fmt.format(r[field])

    def best_peer(model, kind, meas):
        """The same model in pyiqa (IQT, AHIQ); for iqarena's own models the fastest pyiqa model of their kind;
        none for the other teams' models (pyiqa has no version of them)."""
        if model in PYIQA:
            r = summ.get(("pyiqa", model, meas), {})
            return r.get("per_item_ms")
        if not model.startswith("iqarena"):
            return None
        times = [r["per_item_ms"] for (s, m, me), r in summ.items()
                 if s == "pyiqa" and me == meas and "per_item_ms" in r and PYIQA[m][0] == kind and m != "iqt"]
        return min(times) if times else None

    for side, table in SIDES.items():
        for m, spec in table.items():
            if not any(k[:2] == (side, m) for k in summ):
                continue
            kind, label, trains = spec[0], spec[-1], spec[-2]
            any_rec = next((r for k, r in summ.items() if k[:2] == (side, m) and "trainable" in r), {})
            n_train = f" ({_count(any_rec['trainable'])} of {_count(any_rec['params'])})" if any_rec else ""
            ratio = ""
            if side == "iqarena":
                parts = []
                for meas in MEASURES:
                    r, peer = summ.get((side, m, meas), {}), best_peer(m, kind, meas)
                    parts.append(f"{r['per_item_ms'] / peer:.2f}" if "per_item_ms" in r and peer else "—")
                ratio = " / ".join(parts)
            peaks = " / ".join(val(side, m, meas, "peak_mib", "{:.0f}") for meas in MEASURES)
            lines.append(f"| {label} | {side} | {kind.upper()} | {trains}{n_train} | "
                         f"{val(side, m, 'p288', 'per_item_ms', '{:.1f}')} | "
                         f"{val(side, m, 'b1', 'per_item_ms', '{:.1f}')} | {val(side, m, 'bN', 'per_item_ms', '{:.1f}')} | "
                         f"{val(side, m, 'train', 'per_s', '{:.2f}')} | {peaks} | {ratio} |")
    built = {}
    for r in data["records"]:
        if "built" in r:
            built.setdefault((r["side"], r["model"]), r)
    if built:
        lines += ["", "Models as built (random weights where pyiqa would download them):", ""]
        for (side, m), r in built.items():
            extra = f"; weight loads skipped: {', '.join(r['skipped_weight_loads'])}" if r.get("skipped_weight_loads") else ""
            lines.append(f"- {m}: `{r['built']}`; at test time: {r['test_time']}{extra}")
    errors = sorted({f"{k[0]} {k[1]} {k[2]}: {r['error']}" for k, r in summ.items() if "error" in r})
    if errors:
        lines += ["", "Not run (n/a, skip):", ""] + [f"- {e}" for e in errors]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", choices=list(SIDES), help="run one side only, in this interpreter's fresh subprocesses")
    ap.add_argument("-m", "--model", action="append", help=f"model ids (default all): {', '.join([*IQARENA, *PYIQA])}")
    ap.add_argument("--measure", action="append", choices=MEASURES, help="measurements (default all)")
    ap.add_argument("--reps", type=int, default=5, help="repetitions (fresh processes) per measurement; medians")
    ap.add_argument("--inner", type=int, default=3,
                    help="timed calls per process after the warm-up (1 where a call is over --max-seconds / inner)")
    ap.add_argument("--quick", action="store_true", help="smoke test: 128x128 images and crops, batch 4")
    ap.add_argument("--warmup", type=int, default=WARMUP, help="untimed calls before the timed ones")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's default)")
    ap.add_argument("--max-seconds", type=float, default=120.0,
                    help="skip a batch-N inference whose warm-up and call (estimated from batch 1) exceed this")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds before a measurement's process is killed")
    ap.add_argument("--iqarena-python", default=str(ROOT / ".venv" / "bin" / "python"))
    ap.add_argument("--peers-python", default=os.environ.get("PEERS_PYTHON", "/tmp/peers/bin/python"))
    ap.add_argument("--json", type=Path, help="write the conditions and every record to this file")
    ap.add_argument("--render", type=Path, metavar="JSON", help="only print the table of an earlier --json file")
    ap.add_argument("--job", help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.job:
        side, model, measure = a.job.split(":")
        if a.threads:
            import torch

            torch.set_num_threads(a.threads)
        try:
            rec = job(side, model, measure, a.quick, a.inner, a.max_seconds, a.warmup)
        except Exception as exc:  # noqa: BLE001 - reported as a record: the driver goes on with the others
            rec = {"side": side, "model": model, "measure": measure,
                   "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"}
        print("RESULT " + json.dumps(rec), flush=True)
        return
    if a.render:
        print(render(json.loads(a.render.read_text())))
        return

    if a.side:
        sides, pythons = [a.side], {a.side: sys.executable}
    else:
        sides, pythons = [], {}
        for side, py in (("iqarena", a.iqarena_python), ("pyiqa", a.peers_python)):
            if Path(py).exists():
                sides.append(side)
                pythons[side] = py
            else:
                print(f"no {side} interpreter at {py}: that side is left out", file=sys.stderr)
    data = drive(a, sides, pythons)
    print(render(data))
    if a.json:
        a.json.write_text(json.dumps(data, indent=1))


if __name__ == "__main__":
    main()
