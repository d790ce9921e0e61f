"""The foundations the new layers stand on: the generic registry (names, aliases, plugins), metric
entries (module factories, options, checkpoints, input checks), the score store (concurrent writers, a
kill during a write, compaction), planning and the local executor (metrics built once, batching)."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import iqarena
from iqarena import InputError, IQAError
from iqarena.execution import (EXECUTORS, Item, LocalExecutor, ScoreStore, execute, get_executor, plan, score_pairs,
                               store_key)
from iqarena.execution.store import Key
from iqarena.metrics import METRICS, MetricSpec, fingerprint, register, save_checkpoint
from iqarena.registry import Registry

SAMPLE = Path(__file__).resolve().parents[1] / "src" / "iqarena" / "sample"


# ---------------------------------------------------------------- the registry

def test_registry_names_aliases_and_errors():
    reg = Registry("widget", listing="`widgets`")
    reg.add("Alpha", 1, aliases=("a1",))
    assert reg.get("ALPHA") == reg["a1"] == 1 and reg.resolve("A1") == "alpha"
    assert reg.names() == ["alpha"] and "a1" in reg and "beta" not in reg and reg.get("beta", None) is None
    with pytest.raises(InputError, match=r"unknown widget 'beta'; known: alpha\. `widgets` lists them"):
        reg.get("beta")
    with pytest.raises(InputError, match="taken"):
        reg.add("a1", 2)
    reg["alpha"] = 3  # replacing is explicit
    assert reg["alpha"] == 3
    del reg["alpha"]
    assert "a1" not in reg and len(reg) == 0


def test_entry_point_plugins_register(tmp_path, monkeypatch):
    """A third-party package's entry point (a real dist-info on sys.path) adds a metric by name."""
    (tmp_path / "iqa_plugin_demo.py").write_text(textwrap.dedent("""
        from iqarena.metrics import register

        @register("plugin_mean_abs", kind="fr", higher_better=False, score_range=(0, 1))
        def plugin_mean_abs(dist, ref):
            '''Mean absolute difference (a plugin).'''
            return (dist - ref).abs().mean(dim=(1, 2, 3))
        """))
    info = tmp_path / "iqa_plugin_demo-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: iqa-plugin-demo\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[iqarena.metrics]\ndemo = iqa_plugin_demo\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(METRICS, "_plugins_loaded", False)
    try:
        x = torch.rand(2, 3, 16, 16)
        assert torch.allclose(iqarena.create_metric("plugin_mean_abs")(x, x * 0.5), (x * 0.5).mean(dim=(1, 2, 3)))
        assert "plugin_mean_abs" in iqarena.list_metrics("fr")
    finally:
        METRICS.remove("plugin_mean_abs")


# ---------------------------------------------------------------- metric entries

class TinyNet(nn.Module):
    """A small trainable full-reference model (for checkpoint tests)."""

    def __init__(self, width: int = 4):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.head = nn.Linear(width, 1)

    def forward(self, dist, ref):
        f = self.conv(dist.expand(-1, 3, -1, -1)) - self.conv(ref.expand(-1, 3, -1, -1))
        return self.head(f.abs().mean(dim=(2, 3))).squeeze(1)


@pytest.fixture
def tiny_model():
    """A registered model; it and the checkpoints of it that a test registers are removed afterwards."""
    register("tiny_model", kind="fr", higher_better=False, score_range=(0, float("inf")), family="model")(TinyNet)
    yield "tiny_model"
    for name in iqarena.list_metrics(family="checkpoint") + ["tiny_model"]:
        METRICS.remove(name)


def test_module_options_are_checked_and_factories_register(tiny_model):
    with pytest.raises(InputError, match="lpips has no option 'nett'; its options: net, backbone, linear"):
        iqarena.create_metric("lpips", nett="alex")
    with pytest.raises(InputError, match="tiny_model has no option 'depth'; its options: width"):
        iqarena.create_metric(tiny_model, depth=2)
    # a plain function returning a module registers with module=True (a factory that loads a checkpoint)
    register("tiny_factory", kind="fr", higher_better=False, score_range=(0, 1), module=True)(
        lambda width=2: TinyNet(width))
    try:
        m = iqarena.create_metric("tiny_factory", width=3)
        assert m.net.conv.out_channels == 3 and m.info.module
    finally:
        METRICS.remove("tiny_factory")


def test_no_reference_metric_refuses_a_reference():
    x = torch.rand(1, 1, 64, 64)
    with pytest.raises(InputError, match="no-reference metric and takes no reference"):
        iqarena.create_metric("piqe")(x, x)


def test_value_checks_and_the_cheap_path(tiny_model):
    m = iqarena.create_metric(tiny_model)
    x = torch.rand(2, 3, 8, 8)
    over = x * 1.01 + 0.001  # just above 1: what an optimiser step produces
    with pytest.raises(InputError, match="values in"):
        m(over, x)
    with pytest.raises(InputError, match="NaN"):
        m(x.clone().fill_(float("nan")), x)
    # a loss: inputs that require grad take the shape-only path (no device sync, no range check)
    y = over.clone().requires_grad_(True)
    m(y, x).sum().backward()
    assert y.grad is not None and torch.isfinite(y.grad).all()
    assert iqarena.create_metric(tiny_model, check="shape")(over, x).shape == (2,)
    with pytest.raises(InputError, match="channels"):
        iqarena.create_metric(tiny_model, check="shape")(torch.rand(1, 2, 8, 8), torch.rand(1, 2, 8, 8))


def test_checkpoint_registers_and_retraining_invalidates_scores(tmp_path, tiny_model):
    torch.manual_seed(0)
    ckpt = tmp_path / "best.pt"
    save_checkpoint(ckpt, tiny_model, TinyNet(width=4), options={"width": 4}, meta={"epoch": 3})
    m = iqarena.create_metric(str(ckpt))
    assert m.info.family == "checkpoint" and m.info.kind == "fr" and not m.info.higher_better
    items = [Item(f"I{n}", SAMPLE / "dist" / f"I{n}.png", SAMPLE / "ref" / f"I{n}.png") for n in ("03", "04", "06")]
    store = ScoreStore()
    spec = MetricSpec.of(str(ckpt))
    first_key = store_key("sample", spec)
    list(execute(plan(items, [spec], dataset="sample", store=store), LocalExecutor(), store))
    first = store.lookup(first_key, [it.key for it in items])
    assert np.isfinite(first).all()
    with torch.no_grad():
        expect = m(*(torch.stack([iqarena.read_image(p) for p in ps]) for ps in
                     ([it.dist for it in items], [it.ref for it in items])))
    np.testing.assert_allclose(first, expect.double().numpy(), rtol=1e-6)
    # nothing left to do for the same file
    assert plan(items, [MetricSpec.of(str(ckpt))], dataset="sample", store=store) == []
    # retrained under the same name: a new fingerprint, everything scored again, other values
    torch.manual_seed(1)
    save_checkpoint(ckpt, tiny_model, TinyNet(width=4), options={"width": 4}, overwrite=True)
    spec2 = MetricSpec.of(str(ckpt))
    assert fingerprint(spec2) != first_key.fingerprint
    jobs = plan(items, [spec2], dataset="sample", store=store)
    assert sum(len(j.items) for j in jobs) == 3
    list(execute(jobs, LocalExecutor(), store))
    second = store.lookup(store_key("sample", spec2), [it.key for it in items])
    assert np.isfinite(second).all() and not np.allclose(first, second)
    assert len(store) == 6  # both kept; each read only under its own fingerprint


def test_bad_checkpoints_say_what(tmp_path, tiny_model):
    junk = tmp_path / "junk.pt"
    torch.save({"weights": torch.zeros(2)}, junk)
    with pytest.raises(InputError, match="not an iqarena checkpoint"):
        iqarena.create_metric(str(junk))
    other = tmp_path / "other.pt"
    save_checkpoint(other, tiny_model, TinyNet(width=4), options={"width": 2})  # weights of width 4, options 2
    with pytest.raises(InputError, match="does not fit tiny_model"):
        iqarena.create_metric(str(other))
    with pytest.raises(InputError, match="function metric without weights"):
        save_checkpoint(tmp_path / "x.pt", "psnr", TinyNet())


# ---------------------------------------------------------------- the score store

def _writer(root: str, wid: int, parts: int, rows: int) -> None:
    store = ScoreStore(root, max_parts=16)  # small, so that compactions run while the others write
    for p in range(parts):
        names = [f"img{wid}_{p}_{i}.png" for i in range(rows)]
        store.append(Key("ds", "m", "fp"), names, [wid * 1e6 + p * 1e3 + i for i in range(rows)])


def test_two_concurrent_writers_lose_nothing(tmp_path):
    root = tmp_path / "store"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(root), w, 40, 50)) for w in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    store = ScoreStore(root)
    done = store.done(Key("ds", "m", "fp"))
    assert len(done) == 2 * 40 * 50
    names = [f"img{w}_{p}_{i}.png" for w in (1, 2) for p in range(40) for i in range(50)]
    values = store.lookup(Key("ds", "m", "fp"), names)
    np.testing.assert_array_equal(values, [w * 1e6 + p * 1e3 + i for w in (1, 2) for p in range(40) for i in range(50)])
    assert not list(root.glob(".tmp-*"))
    store.compact()
    assert len(store.parts()) == 1 and len(store) >= 4000


_KILLED_WRITER = """
import sys, numpy as np
from iqarena.execution.store import Key, ScoreStore
store = ScoreStore(sys.argv[1])
n = 3_000_000
names = [f"big{i}" for i in range(n)]
print("writing", flush=True)
store.append(Key("ds", "big", "fp"), names, np.arange(n, dtype=float))
print("finished", flush=True)
"""


def test_kill_during_a_write_leaves_the_store_whole(tmp_path):
    root = tmp_path / "store"
    store = ScoreStore(root)
    store.append(Key("ds", "m", "fp"), ["a.png", "b.png"], [1.0, 2.0])
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(root)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    deadline = time.time() + 60
    while not list(root.glob(".tmp-*")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.005)
    assert proc.poll() is None, "the writer finished before it could be killed; make the part larger"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    store = ScoreStore(root)
    assert len(store.parts()) == 1 and store.done(Key("ds", "big", "fp")) == set()
    np.testing.assert_array_equal(store.lookup(Key("ds", "m", "fp"), ["b.png", "a.png", "c.png"]), [2.0, 1.0, np.nan])
    store.append(Key("ds", "m", "fp"), ["c.png"], [3.0])  # still writable
    assert store.lookup(Key("ds", "m", "fp"), ["c.png"])[0] == 3.0


def test_store_matrix_drop_and_bad_folder(tmp_path):
    store = ScoreStore(tmp_path / "s")
    keys = [Key("ds", m, "fp") for m in ("a", "b")]
    store.append_many([(keys[0], ["x", "y", "z"], [1, 2, 3]), (keys[1], ["y", "x"], [20, 10])])
    mat = store.matrix(keys)
    assert mat.dists == ("x", "y", "z") and mat.metrics == ("a", "b")
    np.testing.assert_array_equal(mat.values, [[1, 10], [2, 20], [3, np.nan]])
    store.append(Key("other", "a", "fp"), ["x"], [5])
    store.drop(metric="a")
    assert store.done(keys[0]) == set() and store.done(keys[1]) == {"x", "y"} and len(store) == 2
    (tmp_path / "file").write_text("")
    with pytest.raises(InputError, match="is a file"):
        ScoreStore(tmp_path / "file")


def test_store_memory_is_flat(tmp_path):
    """Reading one metric's scores from a store of many metrics does not load the others."""
    store = ScoreStore(tmp_path / "s")
    names = [f"i{i}" for i in range(20_000)]
    store.append_many([(Key("ds", f"m{j}", "fp"), names, np.full(len(names), float(j))) for j in range(10)])
    got = store._read(["dist", "score"], store._where(Key("ds", "m3", "fp")))
    assert got.num_rows == 20_000 and got.column_names == ["dist", "score"]
    assert (got.column("score").to_numpy() == 3).all()


# ---------------------------------------------------------------- planning and executing

def _sample_items():
    return [Item(f"I{n}.png", SAMPLE / "dist" / f"I{n}.png", SAMPLE / "ref" / f"I{n}.png")
            for n in ("03", "04", "06", "08", "19")]


def test_plan_groups_missing_metrics_and_chunks():
    store = ScoreStore()
    items = _sample_items()
    specs = [MetricSpec.of("psnr"), MetricSpec.of("ssim")]
    store.append(store_key("d", specs[0]), ["I03.png", "I04.png"], [1.0, 2.0])
    jobs = plan(items, specs, dataset="d", store=store, chunk=2)
    got = sorted((tuple(m.name for m in j.metrics), tuple(it.key for it in j.items)) for j in jobs)
    assert got == [(("psnr", "ssim"), ("I06.png", "I08.png")), (("psnr", "ssim"), ("I19.png",)),
                   (("ssim",), ("I03.png", "I04.png"))]
    with pytest.raises(InputError, match="need a reference"):
        plan([Item("x", SAMPLE / "dist" / "I03.png")], specs)


def test_metrics_are_built_once_and_batches_mix_shapes(monkeypatch, tmp_path):
    built = []
    real = MetricSpec.build
    monkeypatch.setattr(MetricSpec, "build", lambda self, device="cpu": built.append(self.name) or real(self, device))
    # two image sizes, interleaved: batches are by shape, not only consecutive ones
    items = []
    for i in range(12):
        size = (24, 32) if i % 2 else (20, 20)
        arr = (np.random.default_rng(i).random((*size, 3)) * 255).astype(np.uint8)
        Image.fromarray(arr).save(tmp_path / f"d{i}.png")
        Image.fromarray(255 - arr).save(tmp_path / f"r{i}.png")
        items.append(Item(f"d{i}.png", tmp_path / f"d{i}.png", tmp_path / f"r{i}.png"))
    calls = []
    ex = LocalExecutor(batch_size=4)
    real_batch = ex._score_batch
    monkeypatch.setattr(ex, "_score_batch", lambda job, batch, scores: calls.append(len(batch))
                        or real_batch(job, batch, scores))
    jobs = plan(items, [MetricSpec.of("psnr"), MetricSpec.of("ssim")], chunk=5)
    results = list(ex.run(jobs))
    ex.close()
    assert built == ["psnr", "ssim"]  # once each, for three jobs
    assert sum(calls) == 12 and len(results) == 3
    # every score equals scoring the image alone
    got = {it.key: r.scores[0][i] for r in results for i, it in enumerate(r.job.items)}
    for it in items:
        d, r = iqarena.read_image(it.dist)[None], iqarena.read_image(it.ref)[None]
        assert got[it.key] == pytest.approx(float(iqarena.create_metric("psnr")(d, r)), rel=1e-12)


def test_score_pairs_order_and_executor_registry():
    items = _sample_items()[:2]
    rows = score_pairs(items, ["psnr", "piqe"])
    assert [(Path(r.dist).name, r.metric) for r in rows] == [("I03.png", "psnr"), ("I03.png", "piqe"),
                                                             ("I04.png", "psnr"), ("I04.png", "piqe")]
    assert rows[0].score == pytest.approx(21.1136, abs=1e-4)
    assert isinstance(get_executor("local", batch_size=2), LocalExecutor)
    with pytest.raises(InputError, match="unknown executor 'nowhere'; known: local"):
        get_executor("nowhere")
    with pytest.raises(IQAError, match="CUDA"):
        if torch.cuda.is_available():
            raise InputError("CUDA present: nothing to check")
        LocalExecutor(device="cuda")


def test_score_and_evaluate_run_through_a_registered_executor(tmp_path):
    """Any registered executor serves `iqarena score` and `iqarena evaluate` (--executor NAME)."""
    from typer.testing import CliRunner

    from iqarena.cli import app

    seen = []

    class Counting(LocalExecutor):
        def run(self, jobs):
            jobs = list(jobs)
            seen.append(sum(len(j.items) for j in jobs))
            return super().run(jobs)

    EXECUTORS.add("counting", Counting)
    try:
        runner = CliRunner()
        res = runner.invoke(app, ["score", "-m", "psnr", "--dist", str(SAMPLE / "dist"), "--ref", str(SAMPLE / "ref"),
                                  "--executor", "counting", "--format", "csv"])
        assert res.exit_code == 0, res.output
        assert seen == [5] and res.output.count("psnr") == 5
        labels = tmp_path / "labels.csv"
        labels.write_text("dist,ref,score\n" + "".join(f"dist/I{n}.png,ref/I{n}.png,{s}\n" for n, s in
                                                       (("03", 1), ("04", 5), ("06", 6), ("08", 4), ("19", 2))))
        import shutil

        shutil.copytree(SAMPLE / "dist", tmp_path / "dist")
        shutil.copytree(SAMPLE / "ref", tmp_path / "ref")
        res = runner.invoke(app, ["evaluate", "--dataset", "csv", "--labels", str(labels), "-m", "psnr", "-m", "ssim",
                                  "--executor", "counting", "--bootstrap", "0", "--no-plots", "-o",
                                  str(tmp_path / "rep")])
        assert res.exit_code == 0, res.output
        assert seen == [5, 5]
    finally:
        EXECUTORS.remove("counting")
