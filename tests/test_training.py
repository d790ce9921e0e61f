"""The learning framework on tiny models and synthetic data: the loss falls, checkpoints are metrics,
a killed run resumes exactly, two torchrun processes equal one, predictions make a valid submission,
and bad configs say what is wrong."""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import iqarena
from iqarena import InputError
from iqarena.cli import app
from iqarena.models.config import Config, load_config, parse_flags
from iqarena.models.train import lr_factor, train
from iqarena.submission import check_submission

HELPERS = Path(__file__).parent / "helpers"
sys.path.insert(0, str(HELPERS.parent))
from helpers import tiny_models  # noqa: E402,F401  (registers tiny_fr and tiny_nr)


def _tiny_set(root: Path, refs: int = 6, per_ref: int = 6, size: int = 24) -> Path:
    """A csv dataset: noisy copies of smooth references, the label falling with the noise level."""
    rng = np.random.default_rng(0)
    (root / "img").mkdir(parents=True, exist_ok=True)
    lines = ["dist,ref,score"]
    for r in range(refs):
        yy, xx = np.mgrid[0:size, 0:size] / size
        base = np.stack([np.sin(3 * xx + r), np.cos(2 * yy - r), xx * yy], -1) * 0.3 + 0.5
        Image.fromarray((base * 255).astype(np.uint8)).save(root / "img" / f"r{r}.png")
        for k in range(per_ref):
            sigma = 0.02 + 0.05 * k
            img = np.clip(base + rng.normal(0, sigma, base.shape), 0, 1)
            Image.fromarray((img * 255).astype(np.uint8)).save(root / "img" / f"r{r}_d{k}.png")
            lines.append(f"img/r{r}_d{k}.png,img/r{r}.png,{80 - 10 * k + rng.normal(0, 1):.3f}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root / "labels.csv"


def _config(tmp_path: Path, labels: Path, **over) -> Config:
    flags = {"model.name": "tiny_fr", "data.dataset": "csv", "data.labels": str(labels), "data.crop": "16",
             "data.batch_size": "4", "data.fractions": "[0.67, 0.33]", "train.epochs": "3",
             "train.out": str(tmp_path / "run"), "train.loss": "plcc+0.1*l1", "optim.lr": "0.01",
             "optim.warmup_epochs": "0.5", "train.progress": "false", **over}
    return load_config(None, flags)


@pytest.fixture
def labels(tmp_path):
    return _tiny_set(tmp_path / "data")


def _rows(path: Path) -> list[dict]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_loss_falls_and_checkpoints_are_metrics(tmp_path, labels):
    cfg = _config(tmp_path, labels, **{"train.epochs": "8", "optim.lr": "0.05"})
    res = train(cfg, log=lambda m: None)
    out = tmp_path / "run"
    for name in ("last.pt", "best.pt", "steps.csv", "epochs.csv", "curves.png", "config.json"):
        assert (out / name).is_file(), name
    epochs = _rows(out / "epochs.csv")
    assert len(epochs) == 8
    first, last = float(epochs[0]["train_loss"]), float(epochs[-1]["train_loss"])
    assert last < first * 0.7, (first, last)
    assert res.best_main == max(float(e["val_main"]) for e in epochs) and res.best_main > 1.8
    # the best checkpoint is a metric: by path, through create_metric and the CLI, equal to the validation
    m = iqarena.create_metric(str(out / "best.pt"))
    assert m.info.family == "checkpoint" and m.info.kind == "fr"
    d = iqarena.read_image(labels.parent / "img" / "r0_d5.png")[None]
    r = iqarena.read_image(labels.parent / "img" / "r0.png")[None]
    good = iqarena.read_image(labels.parent / "img" / "r0_d0.png")[None]
    with torch.no_grad():
        assert float(m(good, r)) > float(m(d, r))  # learned: less noise scores higher
    res = CliRunner().invoke(app, ["score", "-m", str(out / "best.pt"), "--dist", str(labels.parent / "img" /
                                                                                        "r0_d5.png"),
                                   "--ref", str(labels.parent / "img" / "r0.png"), "--format", "csv"])
    assert res.exit_code == 0, res.output
    with torch.no_grad():
        expect = float(m(d, r))
    assert float(res.output.strip().splitlines()[-1].split(",")[-1]) == pytest.approx(expect, rel=1e-6)
    # a second run into the same folder is refused; nothing is lost
    with pytest.raises(InputError, match="not empty"):
        train(cfg, log=lambda m: None)


_RUNNER = """
import sys
sys.path.insert(0, {helpers!r})
import helpers.tiny_models
from iqarena.cli import main
main()
"""


def _runner(tmp_path: Path) -> Path:
    path = tmp_path / "run_iqarena.py"
    path.write_text(_RUNNER.format(helpers=str(HELPERS.parent)))
    return path


def _flags(cfg_over: dict) -> list[str]:
    return [a for k, v in cfg_over.items() for a in (f"--{k}", v)]


def test_a_killed_run_resumes_exactly(tmp_path, labels):
    over = {"train.save_every": "2", "train.epochs": "4", "data.crops_per_image": "2", "model.options":
            "{dropout = 0.3}"}
    whole = _config(tmp_path / "a", labels, **over)
    train(whole, log=lambda m: None)
    steps_whole = _rows(tmp_path / "a" / "run" / "steps.csv")
    assert len(steps_whole) == 4 * 6  # 24 training images, batches of 4

    # the same run in another process, killed with SIGKILL after its 7th step (mid-epoch), then resumed
    out = tmp_path / "b" / "run"
    flags = _flags({"model.name": "tiny_fr", "data.dataset": "csv", "data.labels": str(labels), "data.crop": "16",
                    "data.batch_size": "4", "data.fractions": "[0.67, 0.33]", "train.out": str(out),
                    "train.loss": "plcc+0.1*l1", "optim.lr": "0.01", "optim.warmup_epochs": "0.5",
                    "train.progress": "false", **over})
    proc = subprocess.Popen([sys.executable, str(_runner(tmp_path)), "train", *flags], stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (out / "steps.csv").is_file() and len((out / "steps.csv").read_text().splitlines()) > 7:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(_rows(out / "steps.csv")) < len(steps_whole)
    res = subprocess.run([sys.executable, str(_runner(tmp_path)), "train", *flags, "--resume"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    steps = _rows(out / "steps.csv")
    assert [(s["step"], s["loss"], s["lr"]) for s in steps] == [(s["step"], s["loss"], s["lr"]) for s in steps_whole]
    a = torch.load(tmp_path / "a" / "run" / "last.pt", weights_only=True)["state_dict"]
    b = torch.load(out / "last.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _rows(out / "epochs.csv") and [e["val_main"] for e in _rows(out / "epochs.csv")] == \
        [e["val_main"] for e in _rows(tmp_path / "a" / "run" / "epochs.csv")]
    # resuming with other settings is refused
    res = subprocess.run([sys.executable, str(_runner(tmp_path)), "train", *flags, "--optim.lr", "0.5", "--resume"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "optim.lr" in res.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("loss", ["l1", "plcc+0.1*l1"])
def test_two_torchrun_processes_equal_one(tmp_path, labels, loss):
    over = {"model.name": "tiny_fr", "model.options": "{dropout = 0.0}", "data.dataset": "csv",
            "data.labels": str(labels), "data.crop": "16", "data.flip": "false", "data.batch_size": "4",
            "data.fractions": "[0.67, 0.33]", "train.epochs": "2", "train.loss": loss, "optim.lr": "0.01",
            "optim.optimizer": "sgd",
            "train.progress": "false"}
    single = load_config(None, {**over, "train.out": str(tmp_path / "one")})
    train(single, log=lambda m: None)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "IQARENA_DDP_BACKEND": "gloo"}
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), str(_runner(tmp_path)),
                          "train", *_flags({**over, "train.out": str(tmp_path / "two")})],
                         capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    a = torch.load(tmp_path / "one" / "last.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "two" / "last.pt", weights_only=True)["state_dict"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    la = [float(s["loss"]) for s in _rows(tmp_path / "one" / "steps.csv")]
    lb = [float(s["loss"]) for s in _rows(tmp_path / "two" / "steps.csv")]
    np.testing.assert_allclose(la, lb, rtol=1e-5)


def test_predict_writes_output_and_a_valid_submission(tmp_path, labels):
    train(_config(tmp_path, labels, **{"train.epochs": "1"}), log=lambda m: None)
    ckpt = tmp_path / "run" / "best.pt"
    runner = CliRunner()
    out, sub = tmp_path / "output.txt", tmp_path / "sub.zip"
    res = runner.invoke(app, ["predict", str(ckpt), "--dataset", "csv", "--labels", str(labels), "-o", str(out),
                              "--submission", str(sub), "--test-crop", "16", "--description", "tiny"])
    assert res.exit_code == 0, res.output
    lines = out.read_text().splitlines()
    assert len(lines) == 36 and lines[0].startswith("r0_d0.png,")
    names = [ln.split(",")[0] for ln in lines]
    checked = check_submission(sub, names)
    assert checked.readme.runtime > 0 and not checked.readme.gpu and checked.readme.description == "tiny"
    np.testing.assert_array_equal(checked.scores, [float(ln.split(",")[1]) for ln in lines])
    # the five-crop ensemble is the mean of the five crops' scores
    m = iqarena.create_metric(str(ckpt), test_crop=16)
    d = iqarena.read_image(labels.parent / "img" / "r1_d2.png")[None]
    r = iqarena.read_image(labels.parent / "img" / "r1.png")[None]
    with torch.no_grad():
        crops = [m.net.score(d[..., y:y + 16, x:x + 16], r[..., y:y + 16, x:x + 16])
                 for y, x in ((0, 0), (0, 8), (8, 0), (8, 8), (4, 4))]
        assert float(m(d, r)) == pytest.approx(float(torch.stack(crops).mean()), rel=1e-6)
        ensemble = float(m(d, r))
    assert float(lines[names.index("r1_d2.png")].split(",")[1]) == pytest.approx(ensemble, rel=1e-6)
    with zipfile.ZipFile(sub) as zf:
        assert sorted(zf.namelist()) == ["output.txt", "readme.txt"]
    res = runner.invoke(app, ["predict", str(ckpt), "--dataset", "csv", "--labels", str(labels), "-o", str(out)])
    assert res.exit_code != 0 and isinstance(res.exception, InputError)  # exists: not overwritten
    # the report: the checkpoint evaluated like any metric, its scores equal the predictions (no test crops)
    rep = tmp_path / "report"
    res = runner.invoke(app, ["evaluate", "--dataset", "csv", "--labels", str(labels), "-m", str(ckpt), "-o", str(rep),
                              "--bootstrap", "0", "--no-plots"])
    assert res.exit_code == 0, res.output
    with (rep / "table.csv").open() as fh:
        row = next(csv.DictReader(fh))
    assert row["metric"] == str(ckpt) and int(row["n"]) == 36
    scored = {r["dist"]: float(r["score"]) for r in _rows(rep / "scores.csv")}
    with torch.no_grad():
        plain = float(iqarena.create_metric(str(ckpt))(d, r))
    assert scored["img/r1_d2.png"] == pytest.approx(plain, rel=1e-6)


def test_bad_configs_say_what(tmp_path, labels):
    with pytest.raises(InputError, match=r"unknown key 'optim.lrr'\. Did you mean 'optim.lr'"):
        load_config(None, {"optim.lrr": "1"})
    with pytest.raises(InputError, match="train.epochs: 'two' is not a valid value"):
        load_config(None, {"train.epochs": "two"})
    with pytest.raises(InputError, match="train.epochs: expected int, got float"):
        load_config(None, {"train.epochs": "2.5"})
    bad = tmp_path / "bad.toml"
    bad.write_text("[optim]\nlr = 0.1\n[trian]\nepochs = 1\n")
    with pytest.raises(InputError, match="unknown key 'trian'. Did you mean 'train'"):
        load_config(bad)
    with pytest.raises(InputError, match="unexpected argument"):
        parse_flags(["lr", "1"])
    assert parse_flags(["--optim.lr=0.5", "--data.flip", "--train.epochs", "3"]) == \
        {"optim.lr": "0.5", "data.flip": "true", "train.epochs": "3"}
    assert parse_flags(["--root", "PIPAL", "--out=runs/x", "--epochs", "2"]) == \
        {"data.root": "PIPAL", "train.out": "runs/x", "train.epochs": "2"}
    with pytest.raises(InputError, match="larger than"):
        train(_config(tmp_path, labels, **{"data.crop": "64"}), log=lambda m: None)
    with pytest.raises(InputError, match="has no images"):
        train(_config(tmp_path / "x", labels, **{"data.fractions": "[1.0, 0.0]"}), log=lambda m: None)
    with pytest.raises(InputError, match="function metric with nothing to train"):
        train(_config(tmp_path / "y", labels, **{"model.name": "psnr"}), log=lambda m: None)
    with pytest.raises(InputError, match="no reference images"):
        nr_labels = labels.parent / "nr.csv"
        nr_labels.write_text("\n".join(ln.split(",")[0] + "," + ln.split(",")[2] for ln in
                                       labels.read_text().splitlines()[1:]) + "\n")
        train(_config(tmp_path / "z", nr_labels), log=lambda m: None)
    nan = labels.parent / "nan.csv"
    nan.write_text(labels.read_text().replace(labels.read_text().splitlines()[3].split(",")[2], "nan", 1))
    with pytest.raises(InputError, match="not finite"):
        train(_config(tmp_path / "w", nan), log=lambda m: None)


def test_schedules():
    cfg = Config()
    cfg.train.epochs, cfg.optim.warmup_epochs, cfg.optim.schedule = 10, 1, "cosine"
    assert lr_factor(0, 10, cfg) == pytest.approx(0.1) and lr_factor(9, 10, cfg) == pytest.approx(1.0)
    assert lr_factor(10, 10, cfg) == pytest.approx(1.0) and lr_factor(55, 10, cfg) == pytest.approx(0.5)
    assert lr_factor(100, 10, cfg) == pytest.approx(0.0)
    cfg.optim.schedule, cfg.optim.warmup_epochs, cfg.optim.step_epochs, cfg.optim.gamma = "step", 0, 3, 0.5
    assert [lr_factor(s, 10, cfg) for s in (0, 29, 30, 65)] == [1.0, 1.0, 0.5, 0.25]


class _TinyTwoPart(tiny_models.TinyFR):
    """tiny_fr with its convolution under ``backbone.`` and a recorded auxiliary objective."""

    aux_weight = 0.0
    seen: list = []

    conv = property(lambda self: self.backbone)

    def __init__(self, **kw):
        super().__init__(**kw)
        self.backbone = self._modules.pop("conv")

    def auxiliary_loss(self, targets):
        type(self).seen.append({k: v.clone() for k, v in targets.items()})
        return self.aux_weight * (self.head.weight ** 2).sum() + 0 * self.head.bias.sum() if self.aux_weight else None


if "tiny_two_part" not in iqarena.metrics.METRICS:
    iqarena.metrics.register("tiny_two_part", kind="fr", higher_better=True, score_range=(-np.inf, np.inf),
                             family="model")(_TinyTwoPart)


def test_two_stage_training_freezes_the_backbone_first(tmp_path, labels):
    cfg = _config(tmp_path, labels, **{"model.name": "tiny_two_part", "train.epochs": "2",
                                       "optim.freeze_backbone_epochs": "1", "optim.backbone_lr": "1.0"})
    # the schedule: the backbone group gets nothing in epoch 1, the full rate afterwards
    from iqarena.models.train import build_model, build_optimizer, group_factors
    torch.manual_seed(cfg.train.seed)
    model, _ = build_model(cfg)
    factors = group_factors(build_optimizer(model, cfg), 5, cfg)
    assert [f(3) for f in factors] == [lr_factor(3, 5, cfg), 0.0]
    assert [f(5) for f in factors] == [lr_factor(5, 5, cfg)] * 2
    # a one-epoch run inside the frozen stage leaves the backbone exactly as initialised, the head not
    one = _config(tmp_path / "one", labels, **{"model.name": "tiny_two_part", "train.epochs": "1",
                                               "optim.freeze_backbone_epochs": "1"})
    train(one, log=lambda m: None)
    trained = torch.load(tmp_path / "one" / "run" / "last.pt", weights_only=True)["state_dict"]
    assert torch.equal(trained["backbone.weight"], model.backbone.weight)
    assert not torch.equal(trained["head.weight"], model.head.weight)


def test_low_scores_are_oversampled(labels):
    from iqarena.models.data import EpochSampler
    from iqarena.models.train import oversampling
    scores = np.array([5.0, 1.0, 3.0, 2.0, 4.0, 0.5, 6.0, 7.0])
    repeats = oversampling(scores, 0.25, 3)
    assert repeats.tolist() == [1, 3, 1, 1, 1, 3, 1, 1]  # the two images under the lower quartile (1.375)
    order = EpochSampler(8, 0, repeats=repeats).order()
    assert sorted(order) == [0, 1, 1, 1, 2, 3, 4, 5, 5, 5, 6, 7]
    assert oversampling(scores, 0.0, 3) is None and EpochSampler(8, 0).order() == EpochSampler(8, 0, None).order()
    with pytest.raises(InputError, match="quantile in"):
        oversampling(scores, 1.5, 2)


def test_a_model_objective_is_added_and_sees_the_batch_targets(tmp_path, labels):
    _TinyTwoPart.seen = []
    plain = _config(tmp_path / "a", labels, **{"model.name": "tiny_two_part", "train.epochs": "1"})
    train(plain, log=lambda m: None)
    base = [float(r["loss"]) for r in _rows(tmp_path / "a" / "run" / "steps.csv")]
    t = _TinyTwoPart.seen[0]
    assert set(t) == {"score", "kind", "content"} and t["kind"].shape == t["score"].shape == t["content"].shape
    _TinyTwoPart.aux_weight = 100.0
    try:
        train(_config(tmp_path / "b", labels, **{"model.name": "tiny_two_part", "train.epochs": "1"}),
              log=lambda m: None)
    finally:
        _TinyTwoPart.aux_weight = 0.0
    with_aux = [float(r["loss"]) for r in _rows(tmp_path / "b" / "run" / "steps.csv")]
    # the first step starts from the same weights: the logged loss is the plain loss plus the model's term
    torch.manual_seed(0)
    head = _TinyTwoPart().head.weight
    assert with_aux[0] == pytest.approx(base[0] + 100.0 * float((head.detach() ** 2).sum()), rel=1e-5)


def test_init_starts_from_another_runs_weights(tmp_path, labels):
    first = _config(tmp_path / "a", labels, **{"train.epochs": "1"})
    train(first, log=lambda m: None)
    best = tmp_path / "a" / "run" / "best.pt"
    from iqarena.models.train import build_model, start_from
    model, _ = build_model(first)
    start_from(model, str(best))
    saved = torch.load(best, weights_only=True)["state_dict"]
    assert all(torch.equal(model.state_dict()[k], v) for k, v in saved.items())
    second = _config(tmp_path / "b", labels, **{"train.epochs": "1", "train.init": str(best)})
    train(second, log=lambda m: None)
    foreign = tmp_path / "foreign.pt"
    torch.save({"other.weight": torch.zeros(3)}, foreign)
    with pytest.raises(InputError, match="holds no tensor"):
        start_from(model, str(foreign))


def test_smooth_l1_on_known_numbers():
    from iqarena.models.losses import build_loss
    loss = build_loss("smooth_l1")
    pred, target = torch.tensor([0.0, 0.5, 3.0]), torch.tensor([0.0, 0.0, 1.0])
    # |d| = 0, 0.5 (quadratic: 0.5 * 0.25), 2 (linear: 2 - 0.5)
    assert float(loss(pred, target)) == pytest.approx((0 + 0.125 + 1.5) / 3)


def test_batches_of_runs_of_one_reference():
    from iqarena.models.data import EpochSampler
    groups = ["a"] * 5 + ["b"] * 4 + ["c"] * 3
    sampler = EpochSampler(12, 0, groups=groups, per_group=2)
    order = sampler.order()
    assert sorted(order) == list(range(12))  # every image once
    runs, i = [], 0
    while i < len(order):  # consecutive items of one reference form runs of at most 2
        j = i
        while j + 1 < len(order) and groups[order[j + 1]] == groups[order[i]] and j + 1 - i < 2:
            j += 1
        runs.append(order[i:j + 1])
        i = j + 1
    assert sorted(len(r) for r in runs) == [1, 1, 2, 2, 2, 2, 2]  # a: 2+2+1, b: 2+2, c: 2+1
    assert sampler.order() == order and EpochSampler(12, 1, groups=groups, per_group=2).order() != order
    assert EpochSampler(12, 0, groups=groups, per_group=0).order() == EpochSampler(12, 0).order()


def test_loss_none_trains_on_the_models_own_objective(tmp_path, labels):
    _TinyTwoPart.aux_weight = 1.0
    try:
        train(_config(tmp_path / "a", labels, **{"model.name": "tiny_two_part", "train.epochs": "1",
                                                 "train.loss": "none"}), log=lambda m: None)
    finally:
        _TinyTwoPart.aux_weight = 0.0
    torch.manual_seed(0)
    head = _TinyTwoPart().head.weight.detach()
    first = float(_rows(tmp_path / "a" / "run" / "steps.csv")[0]["loss"])
    assert first == pytest.approx(float((head ** 2).sum()), rel=1e-5)  # the model's term and nothing else
    with pytest.raises(InputError, match="has none"):
        train(_config(tmp_path / "b", labels, **{"train.loss": "none"}), log=lambda m: None)
