"""The Ray executor on a real local cluster (2 CPUs, loopback only, one per module): the same numbers
as a local run, bit for bit; `iqarena score` and `iqarena evaluate` through it; a worker killed
mid-run and a driver killed mid-run (every score stored exactly once, the rerun scores only the rest);
the deep metrics on GPU workers (a logical GPU); streaming plans and batched writes; ray optional.
The cluster's workers start Python processes that import torch: the module takes about a minute."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.dataset as pds
import pytest
import torch

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # before ray is imported: bind to 127.0.0.1 only
ray = pytest.importorskip("ray")

from iqarena import InputError, ResourceError
from iqarena.execution import Item, LocalExecutor, ScoreStore, execute, get_executor, iter_plan, plan
from iqarena.execution.ray import RayExecutor, wants_gpu
from iqarena.execution.store import SCHEMA
from iqarena.metrics import MetricSpec

SAMPLE = Path(__file__).resolve().parents[1] / "src" / "iqarena" / "sample"
NAMES = ("I03", "I04", "I06", "I08", "I19")
CHEAP = (MetricSpec.of("psnr"), MetricSpec.of("ssim"))


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster of 2 CPUs and one logical GPU, on the loopback address; its GCS address."""
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, object_store_memory=128 << 20,
             logging_level="ERROR", log_to_driver=False)
    address = ray.get_runtime_context().gcs_address
    try:
        assert address.startswith("127.0.0.1:"), address
        yield address
    finally:
        ray.shutdown()


def items(copies: int) -> list[Item]:
    """The five sample pairs under ``copies`` names each (distinct store keys, shared files)."""
    return [Item(f"c{k}/{n}.png", SAMPLE / "dist" / f"{n}.png", SAMPLE / "ref" / f"{n}.png")
            for k in range(copies) for n in NAMES]


def local_scores(its: list[Item], specs, threads: int, chunk: int) -> dict[tuple[str, str], float]:
    """(metric, key) -> score of a plain local run with ``threads`` torch threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with LocalExecutor() as ex:
            return {(m.name, it.key): s[i] for r in ex.run(plan(its, specs, chunk=chunk))
                    for m, s in zip(r.job.metrics, r.scores) for i, it in enumerate(r.job.items)}
    finally:
        torch.set_num_threads(before)


def stored(store: ScoreStore) -> dict[tuple[str, str], list[float]]:
    """Every row of the store: (metric, key) -> the scores stored for it (one, when nothing is twice)."""
    out: dict[tuple[str, str], list[float]] = {}
    if store.parts():
        t = pds.dataset(store.parts(), schema=SCHEMA, format="parquet").to_table(columns=["metric", "dist", "score"])
        for m, d, s in zip(*(t.column(c).to_pylist() for c in ("metric", "dist", "score"))):
            out.setdefault((m, d), []).append(s)
    return out


def assert_each_once_and_local(store: ScoreStore, expect: dict) -> None:
    got = stored(store)
    assert sorted(got) == sorted(expect)
    twice = {k: v for k, v in got.items() if len(v) != 1}
    assert not twice, f"stored more than once: {list(twice)[:3]}"
    assert all(got[k][0] == expect[k] for k in expect)  # bit for bit


# ---------------------------------------------------------------- without a cluster

def test_ray_is_imported_only_when_chosen_and_its_absence_says_how_to_install(monkeypatch):
    code = ("import sys, iqarena, iqarena.execution, iqarena.cli, iqarena.evaluate.benchmark\n"
            "from iqarena.execution import EXECUTORS\n"
            "assert 'ray' in EXECUTORS.names() and 'ray' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    with pytest.raises(ResourceError, match=r"needs Ray.*pip install 'iqarena\[distributed\]'"):
        get_executor("ray", workers=1)


def test_iter_plan_streams_the_jobs_of_plan(tmp_path):
    store = ScoreStore(tmp_path / "s")
    its = items(7)  # 35 items
    jobs = plan(its, CHEAP, dataset="d", store=store)
    store.append(jobs[0].keys[0], [it.key for it in its[:12]], np.arange(12.0))  # psnr of 12 done
    read = []

    def source():
        for it in its:
            read.append(it.key)
            yield it

    stream = iter_plan(source(), CHEAP, dataset="d", store=store, chunk=4, block=8)
    first = next(stream)
    assert len(read) == 8 and first.metrics == (CHEAP[1],) and len(first.items) == 4  # one block read, no more
    streamed = [first, *stream]
    expect = plan(its, CHEAP, dataset="d", store=store, chunk=4)

    def as_set(js):
        return sorted((tuple(m.name for m in j.metrics), tuple(i.key for i in j.items)) for j in js)

    assert as_set(streamed) == as_set(expect) and sum(j.size for j in streamed) == 12 + 2 * 23


def test_execute_writes_in_batches_and_takes_an_iterator(tmp_path):
    store = ScoreStore(tmp_path / "s")
    its = items(4)  # 20 items, 10 jobs of 2
    with LocalExecutor() as ex:
        results = list(execute(iter_plan(its, [CHEAP[0]], dataset="d", store=store, chunk=2), ex, store,
                               flush_rows=8, total=20))
    assert len(results) == 10 and len(store.parts()) == 3  # 8 + 8 + 4 scores, one part each
    assert len(stored(store)) == 20

    class Failing(LocalExecutor):  # fails after three jobs: those are stored although no part was due yet
        def run(self, jobs):
            for n, r in enumerate(super().run(jobs)):
                if n == 3:
                    raise InputError("worker lost")
                yield r

    other = ScoreStore(tmp_path / "t")
    with pytest.raises(InputError, match="worker lost"), Failing() as ex:
        list(execute(plan(its, [CHEAP[0]], dataset="d", store=other, chunk=2), ex, other, flush_rows=1000))
    assert len(stored(other)) == 6 and len(other.parts()) == 1


# ---------------------------------------------------------------- on the cluster

def test_same_numbers_as_a_local_run_resume_gpu_workers_and_errors(cluster, tmp_path):
    assert wants_gpu(MetricSpec.of("lpips")) and wants_gpu(MetricSpec.of("dists")) and not wants_gpu(CHEAP[0])
    with pytest.raises(InputError, match="cpu, cuda or auto"):
        RayExecutor(device="tpu")
    store = ScoreStore(tmp_path / "s")
    its = items(6)
    specs = (*CHEAP, MetricSpec.of("gmsd"))
    # device cuda: a GPU worker (the cluster's GPU is logical: it computes on the CPU here, gpu_device) takes
    # the metrics that benefit from one (gmsd stands in for a deep metric, so that numbers can be compared)
    with RayExecutor(workers=2, threads=1, device="cuda", gpu_device="cpu", gpu_metrics={"gmsd"}) as ex:
        results = list(execute(iter_plan(its, specs, dataset="d", store=store, chunk=4), ex, store))
        assert sum(r.job.size for r in results) == 30 * 3
        assert sorted({tuple(m.name for m in r.job.metrics) for r in results}) == [("gmsd",), ("psnr", "ssim")]
        assert_each_once_and_local(store, local_scores(its, specs, threads=1, chunk=4))
        info = ex.workers_info()
        assert sorted((i["pool"], tuple(i["gpus"]), i["threads"]) for i in info) == [
            ("cpu", (), 1), ("cpu", (), 1), ("gpu", ("0",), 1)]
        assert len({i["pid"] for i in info}) == 3
        assert list(iter_plan(its, specs, dataset="d", store=store)) == []  # nothing left: a rerun scores nothing

        # a worker's error reaches the driver as itself
        bad = tmp_path / "bad.png"
        bad.write_bytes(b"not a png")
        with pytest.raises(InputError, match="bad.png"):
            list(ex.run(plan([*its[:2], Item("bad.png", bad, SAMPLE / "ref" / "I03.png")], CHEAP, chunk=1)))
        assert not ex.pools["cpu"].slots  # the failed run stopped its work; the next run starts workers anew


def test_score_and_evaluate_commands_on_ray_equal_local(cluster, tmp_path):
    import shutil

    from typer.testing import CliRunner

    from iqarena.cli import app

    runner = CliRunner()
    score = ["score", "-m", "psnr", "-m", "ssim", "--dist", str(SAMPLE / "dist"), "--ref", str(SAMPLE / "ref"),
             "--format", "csv"]
    local = runner.invoke(app, score)
    on_ray = runner.invoke(app, score + ["--executor", "ray", "--workers", "1"])
    assert local.exit_code == 0 and on_ray.exit_code == 0, on_ray.output
    assert on_ray.stdout == local.stdout and on_ray.stdout.count("ssim") == 5  # repr of every score: bit for bit

    shutil.copytree(SAMPLE / "dist", tmp_path / "dist")
    shutil.copytree(SAMPLE / "ref", tmp_path / "ref")
    labels = tmp_path / "labels.csv"
    labels.write_text("dist,ref,score\n" + "".join(f"dist/{n}.png,ref/{n}.png,{s}\n" for n, s in
                                                   zip(NAMES, (1, 5, 6, 4, 2))))
    reports = {}
    for name, extra in (("local", []), ("ray", ["--executor", "ray"])):
        res = runner.invoke(app, ["evaluate", "--dataset", "csv", "--labels", str(labels), "-m", "psnr", "-m", "gmsd",
                                  "--bootstrap", "0", "--no-plots", "-o", str(tmp_path / name),
                                  "--store", str(tmp_path / f"store-{name}"), *extra])
        assert res.exit_code == 0, res.output
        reports[name] = (tmp_path / name / "scores.csv").read_text()
    assert reports["ray"] == reports["local"] and reports["ray"].count("\n") == 11
    res = runner.invoke(app, score + ["--address", "auto"])
    assert res.exit_code != 0 and "--executor ray" in str(res.exception)


def test_a_killed_worker_loses_no_score(cluster, tmp_path):
    store = ScoreStore(tmp_path / "s")
    its = items(8)  # 40 items, 20 jobs
    with RayExecutor(workers=2, threads=1) as ex:
        stream = execute(iter_plan(its, CHEAP, dataset="d", store=store, chunk=2), ex, store)
        next(stream)
        busy = [s for s in ex.pools["cpu"].slots if s.refs]
        assert busy, "no worker has work in flight"
        victim = ray.get(busy[0].actor.info.remote())["pid"]
        os.kill(victim, signal.SIGKILL)
        rest = list(stream)
        assert 1 + len(rest) == 20
        pids = {i["pid"] for i in ex.workers_info()}
        assert victim not in pids and len(pids) >= 1
    assert_each_once_and_local(store, local_scores(its, CHEAP, threads=1, chunk=2))


_DRIVER = """
import os, sys
from pathlib import Path
from iqarena.execution import Item, ScoreStore, execute, iter_plan
from iqarena.execution.ray import RayExecutor
from iqarena.metrics import MetricSpec
address, root, sample = sys.argv[1:4]
its = [Item(f"c{k}/{n}.png", Path(sample) / "dist" / f"{n}.png", Path(sample) / "ref" / f"{n}.png")
       for k in range(4) for n in ("I03", "I04", "I06", "I08", "I19")]
store = ScoreStore(root)
with RayExecutor(address=address, workers=2, threads=1) as ex:
    for n, r in enumerate(execute(iter_plan(its, [MetricSpec.of("vif")], dataset="d", store=store, chunk=1), ex, store)):
        print("stored", n + 1, flush=True)
print("finished", flush=True)
"""


def test_a_killed_driver_is_resumed_by_the_next_run(cluster, tmp_path):
    store = ScoreStore(tmp_path / "s")
    its = items(4)  # 20 jobs of one pair, about 0.1 s each
    specs = [MetricSpec.of("vif")]
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    proc = subprocess.Popen([sys.executable, "-c", _DRIVER, cluster, str(store.root), str(SAMPLE)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        deadline = time.time() + 60
        line = ""
        while time.time() < deadline and not line.startswith("stored 4"):
            line = proc.stdout.readline()
            assert line, "the driver ended before it could be killed"
        assert line.startswith("stored 4")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    done_before = len(stored(store))
    assert 4 <= done_before < 20
    left = plan(its, specs, dataset="d", store=store)
    assert sum(len(j.items) for j in left) == 20 - done_before  # only the rest is planned
    with RayExecutor(workers=2, threads=1) as ex:
        assert sum(r.job.size for r in execute(left, ex, store)) == 20 - done_before
    assert_each_once_and_local(store, local_scores(its, specs, threads=1, chunk=1))
