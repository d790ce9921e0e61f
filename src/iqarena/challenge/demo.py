"""A ready demo challenge from the bundled sample images (``iqarena challenge demo``).

The five bundled reference images are shrunk and distorted (Gaussian blur, white noise, JPEG, down-and-up
sampling; six levels each): 72 images for the development phase (three contents) and 48 for the test
phase (two contents). The labels are *synthetic*, made for the demo only: a MOS-like number from the
PSNR of each image, a per-distortion offset and seeded noise. Two example submissions are written:
PSNR predictions (good) and seeded random numbers (poor).
"""

from __future__ import annotations

import io
import secrets
import zipfile
from datetime import timedelta
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from ..submission import Readme, pack_submission
from .config import now_utc

KINDS = ("blur", "noise", "jpeg", "resample")
LEVELS = 6
DEV = ("I03", "I04", "I06")
TEST = ("I08", "I19")
SIDE = 192
DESCRIPTION = ("A small perceptual IQA challenge built from iqarena's bundled sample images. Labels are synthetic "
               "(from PSNR, a per-distortion offset and noise): this challenge shows the platform, not a benchmark.")


def _distort(img: Image.Image, kind: str, level: int, rng: np.random.Generator) -> Image.Image:
    if kind == "blur":
        return img.filter(ImageFilter.GaussianBlur(0.6 * level))
    if kind == "noise":
        arr = np.asarray(img, dtype=np.float64) + rng.normal(0, 5.0 * level, (img.height, img.width, 3))
        return Image.fromarray(np.clip(arr, 0, 255).round().astype(np.uint8))
    if kind == "jpeg":
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=max(3, 60 - 10 * level))
        return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    small = img.resize((max(8, img.width // (level + 1)), max(8, img.height // (level + 1))), Image.BILINEAR)
    return small.resize(img.size, Image.BICUBIC)


def _psnr(a: Image.Image, b: Image.Image) -> float:
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return float(10 * np.log10(255.0 ** 2 / max(np.mean(d ** 2), 1e-10)))


def build_demo_data(out: Path, seed: int = 0) -> dict[str, dict]:
    """Images, labels, names and example submissions for the two phases under ``out``."""
    rng = np.random.default_rng(seed)
    sample = Path(str(resources.files("iqarena") / "sample" / "ref"))
    offsets = {"blur": -60.0, "noise": 40.0, "jpeg": 0.0, "resample": -30.0}
    phases = {}
    for phase, contents in (("dev", DEV), ("test", TEST)):
        folder = out / phase
        folder.mkdir(parents=True, exist_ok=True)
        rows, psnrs = [], {}
        archive = folder / "images.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
            for content in contents:
                ref = Image.open(sample / f"{content}.png").convert("RGB")
                ref.thumbnail((SIDE, SIDE))
                buf = io.BytesIO()
                ref.save(buf, "PNG")
                zf.writestr(f"Ref/{content}.png", buf.getvalue())
                for kind in KINDS:
                    for level in range(1, LEVELS + 1):
                        name = f"{content}_{kind}_{level}.png"
                        img = _distort(ref, kind, level, rng)
                        buf = io.BytesIO()
                        img.save(buf, "PNG")
                        zf.writestr(f"Dis/{name}", buf.getvalue())
                        p = _psnr(img, ref)
                        psnrs[name] = p
                        rows.append((name, 900.0 + 18.0 * p + offsets[kind] + rng.normal(0, 25.0)))
        (folder / "labels.txt").write_text("".join(f"{n},{s:.4f}\n" for n, s in rows))
        (folder / "names.txt").write_text("".join(f"{n}\n" for n, _ in rows))
        good = pack_submission(psnrs, Readme(0.001, gpu=False, extra_data=False, description="PSNR baseline"),
                               folder / "example-psnr.zip", overwrite=True)
        random = {n: float(v) for n, v in zip(psnrs, rng.uniform(0, 1, len(psnrs)))}
        pack_submission(random, Readme(0.0, gpu=False, extra_data=False, description="random numbers"),
                        folder / "example-random.zip", overwrite=True)
        phases[phase] = {"labels": folder / "labels.txt", "data": archive, "example": good}
    return phases


def write_demo(root: str | Path, test_minutes: float = 20.0) -> tuple[Path, str]:
    """A demo challenge folder (config, data, database, organiser account); (config path, organiser password)."""
    from . import add_organiser, init_challenge

    root = Path(root)
    source = root / "source"
    build_demo_data(source)
    now = now_utc().replace(microsecond=0)
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    start, dev_end = now - timedelta(days=1), now + timedelta(days=30)
    test_end = now + timedelta(minutes=test_minutes)
    config = source / "challenge.toml"
    config.write_text(f'''title = "iqarena demo challenge"
description = "{DESCRIPTION}"

[leaderboard]
columns = ["main", "srcc", "plcc", "runtime", "device", "extra_data", "submitted"]
digits = 4

[limits]
daily = 20
total = 200
score_timeout_s = 60
lease_s = 30

[[phases]]
name = "dev"
title = "Development"
description = "Validation images: scores are shown as soon as they are computed."
start = {start.strftime(fmt)}
end = {dev_end.strftime(fmt)}
labels = "dev/labels.txt"
data = "dev/images.zip"

[[phases]]
name = "test"
title = "Test"
description = "Test images: scores stay hidden until the phase closes."
start = {start.strftime(fmt)}
end = {test_end.strftime(fmt)}
labels = "test/labels.txt"
data = "test/images.zip"
hidden = true
daily = 3
total = 3
''')
    init_challenge(root, config)
    password = secrets.token_urlsafe(9)
    add_organiser(root, "organiser", password)
    return config, password
