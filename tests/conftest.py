"""Shared fixtures: the bundled TID2013 calibration pairs and their official scores."""

from __future__ import annotations

import csv
from importlib import resources
from pathlib import Path

import pytest
import torch

from iqarena.io import read_image

DATA = Path(__file__).parent / "data"
SAMPLE = Path(str(resources.files("iqarena") / "sample"))
NAMES = ["I03", "I04", "I06", "I08", "I19"]
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def official(metric: str) -> list[tuple[float, int]]:
    """Official values of one row of official_scores.csv, each with its printed number of decimals."""
    with (DATA / "official_scores.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row["metric"] == metric:
                out = []
                for n in NAMES:
                    text = row[f"{n}.bmp"]
                    decimals = len(text.split(".")[1]) if "." in text else 0
                    out.append((float(text), decimals))
                return out
    raise KeyError(metric)


def assert_printed_precision(values, metric: str) -> None:
    """Each value, rounded to the printed decimals of the official one, equals it (half-unit tolerance)."""
    for name, v, (ref, dec) in zip(NAMES, values, official(metric)):
        assert abs(float(v) - ref) <= 0.5 * 10 ** (-dec) + 1e-12, f"{metric} {name}: got {float(v)!r}, official {ref}"


@pytest.fixture(autouse=True)
def score_store(tmp_path_factory, monkeypatch):
    """Every test scores into a store of its own (never the user's $IQARENA_STORE or cache)."""
    root = tmp_path_factory.mktemp("store")
    monkeypatch.setenv("IQARENA_STORE", str(root))
    return root


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module's tests (``pytestmark = pytest.mark.usefixtures("one_thread")``): on small
    images intra-op threads mostly contend, 10-20x slower on a busy two-core machine; no result depends on it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def pairs() -> tuple[torch.Tensor, torch.Tensor]:
    """(dist, ref): the five calibration pairs as (5, 3, 384, 512) float tensors in [0, 1]."""
    dist = torch.stack([read_image(SAMPLE / "dist" / f"{n}.png") for n in NAMES])
    ref = torch.stack([read_image(SAMPLE / "ref" / f"{n}.png") for n in NAMES])
    return dist, ref


@pytest.fixture(scope="session")
def goldhill() -> tuple[torch.Tensor, torch.Tensor]:
    """(jpeg, original): greyscale 512x512, shape (1, 1, 512, 512)."""
    return (read_image(DATA / "extra" / "goldhill_jpeg.gif")[None], read_image(DATA / "extra" / "goldhill.gif")[None])


@pytest.fixture(scope="session")
def i01() -> torch.Tensor:
    """TID2013 I01 reference, (1, 3, 384, 512)."""
    return read_image(DATA / "extra" / "I01.png")[None]


@pytest.fixture(scope="session")
def synth(tmp_path_factory):
    """The small synthetic PIPAL-layout set of every model's learning check (tests/helpers/learning.py), made once."""
    from helpers.learning import synth_set

    return synth_set(tmp_path_factory.mktemp("synth"))
