"""The parameter-file catalogue, the cache folder, hash checks, and `iqarena weights list|fetch|add`.

No network: downloads are served by a stand-in for urlopen; catalogue entries are pointed at stand-in
files (random bytes) whose hashes the test computes.
"""

from __future__ import annotations

import hashlib
import io
import re
import urllib.error
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from iqarena import weights as w
from iqarena.cli import app
from iqarena.errors import IQAError
from iqarena.weights import store


@pytest.fixture
def home(tmp_path, monkeypatch):
    """Empty iqarena and torch caches."""
    monkeypatch.setenv("IQARENA_HOME", str(tmp_path / "iqarena"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(store, "_VERIFIED", set())
    return tmp_path


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    """A random 'squeezenet1_1' file and the catalogue entry rewritten to its sha256 and size."""
    data = hashlib.sha256(b"seed").digest() * 4096  # 128 kB
    path = tmp_path / "download" / "squeezenet1_1-b8a52dc0.pth"
    path.parent.mkdir()
    path.write_bytes(data)
    e = replace(w.CATALOGUE["squeezenet1_1"], sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    monkeypatch.setitem(w.CATALOGUE, "squeezenet1_1", e)
    return path, e


def test_catalogue_entries_are_complete():
    hexre = re.compile(r"^[0-9a-f]+$")
    for name, e in w.CATALOGUE.items():
        assert e.name == name and e.filename and e.licence and e.description
        assert e.urls or e.bundled, name  # a published address, or shipped (iqarena's own trained files)
        assert e.sha256 or e.git_sha1 or e.sha256_prefix or e.unverified, name  # a hash, or why none is known
        if e.sha256:
            assert len(e.sha256) == 64 and hexre.match(e.sha256)
        if e.git_sha1:
            assert len(e.git_sha1) == 40 and hexre.match(e.git_sha1)
        m = re.search(r"-([0-9a-f]{8})\.pth$", e.filename)  # torch-hub names carry the sha256 prefix
        if m:
            assert e.sha256_prefix == m.group(1), name
            if e.sha256:
                assert e.sha256.startswith(m.group(1)), name
    for needed in ("alexnet", "vgg16", "squeezenet1_1", "pieapp", "wadiqam-fr-tid", "lpips-v0.1-alex",
                   "dists-alpha-beta", "niqe-modelparameters", "brisque-allmodel", "brisque-allrange"):
        assert needed in w.CATALOGUE


@pytest.mark.parametrize("name", [n for n, e in w.CATALOGUE.items() if e.bundled])
def test_bundled_files_ship_with_licence_and_verify(name):
    e = w.CATALOGUE[name]
    if name.startswith(("niqe", "brisque")) and not (store.FILES / e.bundled).exists():
        pytest.skip(f"{e.bundled} is added with the no-reference metrics")
    p = w.path_for(name)  # full sha256 check
    assert p == store.FILES / e.bundled and w.is_present(name)
    assert (p.parent / "LICENSE").is_file() or (p.parent / "readme.txt").is_file()  # the licence travels along
    assert w.digest(p) == e.sha256


def test_missing_file_error_names_file_address_and_command(home):
    assert not w.is_present("alexnet")
    with pytest.raises(IQAError) as exc:
        w.path_for("alexnet")
    msg = str(exc.value)
    for part in ("alexnet-owt-7be5be79.pth", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
                 "iqarena weights fetch alexnet", "iqarena weights add alexnet PATH", str(home / "iqarena")):
        assert part in msg


def test_metric_without_its_file_fails_clearly_and_all_skips_it(home):
    from iqarena import create_metric
    from iqarena.cli.score import available_metrics
    from iqarena.metrics import get_info
    from iqarena.metrics.registry import is_available

    with pytest.raises(IQAError, match="iqarena weights fetch vgg16"):
        create_metric("dists")
    for name in ("lpips", "lpips_vgg", "lpips_squeeze", "dists", "pieapp", "wadiqam_fr", "wadiqam_fr_live"):
        assert not is_available(get_info(name))
        assert name not in available_metrics("fr")
    out = CliRunner().invoke(app, ["metrics"]).output
    assert re.search(r"lpips\s.*alexnet \(missing\), lpips-v0\.1-alex\s", out)  # the bundled one is there


def test_cache_and_torch_hub_lookup_with_hash_check(home, stand_in):
    src, e = stand_in
    hub = home / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / e.filename).write_bytes(src.read_bytes())
    assert w.is_present("squeezenet1_1") and w.path_for("squeezenet1_1") == hub / e.filename
    cached = home / "iqarena" / "weights" / e.filename  # the cache folder comes first
    cached.parent.mkdir(parents=True)
    cached.write_bytes(src.read_bytes())
    assert w.path_for("squeezenet1_1") == cached


def test_tampered_or_truncated_file_is_refused(home, stand_in):
    src, e = stand_in
    cached = home / "iqarena" / "weights" / e.filename
    cached.parent.mkdir(parents=True)
    data = bytearray(src.read_bytes())
    data[1000] ^= 1
    cached.write_bytes(bytes(data))
    assert w.is_present("squeezenet1_1")  # right size: presence is cheap, the hash is checked on load
    with pytest.raises(IQAError, match=r"sha256 .*expected " + e.sha256):
        w.path_for("squeezenet1_1")
    cached.write_bytes(bytes(data[:-1]))
    assert not w.is_present("squeezenet1_1")
    with pytest.raises(IQAError, match="bytes, expected"):
        w.load_state_dict("squeezenet1_1")


def test_prefix_only_and_git_blob_checks(tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(b"hello\n")
    assert w.digest(p, "git") == "ce013625030ba8dba906f756967f9e9ca394464a"  # `git hash-object`
    full = hashlib.sha256(b"hello\n").hexdigest()
    w.check_file(p, replace(w.CATALOGUE["resnet34"], sha256_prefix=full[:8]))
    with pytest.raises(IQAError, match="sha256 prefix"):
        w.check_file(p, replace(w.CATALOGUE["resnet34"], sha256_prefix="00000000"))
    w.check_file(p, replace(w.CATALOGUE["wadiqam-fr-tid"], git_sha1="ce013625030ba8dba906f756967f9e9ca394464a"))
    with pytest.raises(IQAError, match="git blob sha1"):
        w.check_file(p, w.CATALOGUE["wadiqam-fr-tid"])
    # an entry whose hash is not known loads with a warning that gives the file's sha256 to compare
    unknown = replace(w.CATALOGUE["resnet34"], sha256=None, sha256_prefix=None, unverified="no hash published")
    with pytest.warns(UserWarning, match=f"without a check: no hash published. Its sha256 is {full}"):
        w.check_file(p, unknown)


def test_weights_add_round_trip_never_overwrites_silently(home, stand_in):
    src, e = stand_in
    runner = CliRunner()
    r = runner.invoke(app, ["weights", "add", "squeezenet1_1", str(src)])
    assert r.exit_code == 0, r.output
    dest = home / "iqarena" / "weights" / e.filename
    assert dest.read_bytes() == src.read_bytes() and w.path_for("squeezenet1_1") == dest
    assert runner.invoke(app, ["weights", "add", "squeezenet1_1", str(src)]).exit_code == 0  # same file: fine
    listing = runner.invoke(app, ["weights", "list"]).output
    assert "squeezenet1_1" in listing and "missing" in listing
    dest.write_bytes(b"something else")
    r = runner.invoke(app, ["weights", "add", "squeezenet1_1", str(src)])
    assert isinstance(r.exception, IQAError) and r.exception.option == "overwrite"
    assert dest.read_bytes() == b"something else"
    assert runner.invoke(app, ["weights", "add", "squeezenet1_1", str(src), "--force"]).exit_code == 0
    assert dest.read_bytes() == src.read_bytes()
    bad = src.with_name("other.pth")
    bad.write_bytes(b"x" * len(src.read_bytes()))
    with pytest.raises(IQAError, match="not the published"):
        w.add("squeezenet1_1", bad, overwrite=True)
    with pytest.raises(IQAError, match="ships with iqarena"):
        w.add("lpips-v0.1-alex", src)


class _Response(io.BytesIO):
    headers: dict = {}

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def test_fetch_downloads_checks_and_fails_clearly_offline(home, stand_in, monkeypatch):
    src, e = stand_in

    def offline(*a, **k):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(store.urllib.request, "urlopen", offline)
    with pytest.raises(IQAError, match="Without network.*iqarena weights add squeezenet1_1 PATH"):
        w.fetch("squeezenet1_1", progress=False)
    monkeypatch.setattr(store.urllib.request, "urlopen", lambda *a, **k: _Response(b"corrupt"))
    with pytest.raises(IQAError, match="failed its check"):
        w.fetch("squeezenet1_1", progress=False)
    assert not list((home / "iqarena" / "weights").iterdir())  # nothing half-written is left
    monkeypatch.setattr(store.urllib.request, "urlopen", lambda *a, **k: _Response(src.read_bytes()))
    r = CliRunner().invoke(app, ["weights", "fetch", "squeezenet1_1"])
    assert r.exit_code == 0, r.output
    assert (home / "iqarena" / "weights" / e.filename).read_bytes() == src.read_bytes()


def test_chainer_hdf5_layout_is_read_with_torch_names(tmp_path):
    h5py = pytest.importorskip("h5py", reason="h5py reads the published WaDIQaM files")
    import numpy as np

    p = tmp_path / "m.model"
    with h5py.File(p, "w") as f:
        f["conv1/W"] = np.arange(6, dtype=np.float32).reshape(2, 3, 1, 1)
        f["conv1/b"] = np.zeros(2, np.float32)
        f["fc2_a/W"] = np.ones((1, 4), np.float32)
    sd = w.load_state_dict(p)
    assert list(sd) == ["conv1.weight", "conv1.bias", "fc2_a.weight"]
    assert sd["conv1.weight"].shape == (2, 3, 1, 1) and float(sd["conv1.weight"].sum()) == 15.0


def test_unknown_names(home):
    assert not w.is_present("no-such-file")
    with pytest.raises(IQAError, match="unknown parameter file"):
        w.path_for("no-such-file")
    with pytest.raises(IQAError, match="does not exist"):
        w.load_state_dict(home / "nothing.pth")
