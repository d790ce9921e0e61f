"""WaDIQaM-FR reference outputs from the authors' own Chainer code (called by parity_deep.py).

Runs in an environment with Chainer 7 and numpy < 2 (Chainer does not import under numpy 2):

    python3.11 -m venv /tmp/chainer-env
    /tmp/chainer-env/bin/pip install "numpy<2" "setuptools<70" wheel h5py
    /tmp/chainer-env/bin/pip install --no-build-isolation chainer

Given a checkout of https://github.com/dmaniry/deepIQA (its fr_model.py), stand-in weights (an .npz
with Chainer names such as ``conv1/W``) and images (an .npz of uint8 HWC arrays ``dist_i``, ``ref_i``), it
builds ``FRModel(top="weighted")``, loads the weights, saves them with ``chainer.serializers.save_hdf5``
(the format of the published .model files, for iqarena's reader to load), and scores every pair as
evaluate.py does: non-overlapping 32x32 patches, test mode, weighted mean of the patch scores.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def patches(img: np.ndarray) -> np.ndarray:
    """Non-overlapping 32x32 patches, row-major, as evaluate.py's extract_patches + reshape + transpose."""
    h, w = (img.shape[0] // 32) * 32, (img.shape[1] // 32) * 32
    p = img[:h, :w].reshape(h // 32, 32, w // 32, 32, 3).transpose(0, 2, 4, 1, 3)
    return p.reshape(-1, 3, 32, 32).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--deepiqa", required=True, help="checkout of github.com/dmaniry/deepIQA")
    ap.add_argument("--weights", required=True)
    ap.add_argument("--images", required=True)
    ap.add_argument("--save-hdf5", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    sys.path.insert(0, args.deepiqa)
    import chainer
    from chainer import serializers
    from fr_model import FRModel

    chainer.global_config.train = False
    model = FRModel(top="weighted")
    w = np.load(args.weights)
    for name, param in model.namedparams():
        param.data = w[name.lstrip("/")].astype(np.float32)
    serializers.save_hdf5(args.save_hdf5, model)
    imgs = np.load(args.images)
    scores = {}
    for key in sorted(k for k in imgs.files if k.startswith("dist_")):
        tag = key[len("dist_"):]
        x, x_ref = patches(imgs[key]), patches(imgs["ref_" + tag])
        t = np.zeros((1, 1), np.float32)
        with chainer.using_config("train", False), chainer.no_backprop_mode():
            model.forward(x, x_ref, t, False, n_patches_per_image=x.shape[0])
        y = np.asarray(model.y[0].data).reshape(-1)
        a = np.asarray(model.a[0].data).reshape(-1)
        scores[tag] = float(np.sum(y * a) / np.sum(a))
    with open(args.out, "w") as fh:
        json.dump({"chainer": chainer.__version__, "scores": scores}, fh)


if __name__ == "__main__":
    main()
