"""The submission parser on real files: plain prediction files, zips (layout, caps, zip bombs, unsafe
paths), readme.txt, the matching rule (the LIVE-style clash of equal file names in several folders),
packing, and the `iqarena submission` commands."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from iqarena.cli import app
from iqarena.datasets.table import numbered_rows, read_rows
from iqarena.errors import InputError
from iqarena.submission import (CHUNK, RATIO_FREE, Readme, check_submission, match_submission, pack_submission,
                                parse_readme, read_names, read_submission)

LIVE = ["jp2k/img1.bmp", "fastfading/img1.bmp", "wn/img1.bmp"]
README = ("runtime per image [s] : 0.25\nCPU[1] / GPU[0] : 1\nExtra Data [1] / No Extra Data [0] : 0\n"
          "Other description : two nets\n")


def _zip(path: Path, members: dict[str, bytes | str]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _patch_central(path: Path, offset: int, fmt: str, value: int) -> None:
    """Overwrite a field of the first member's central-directory entry (and of its local header)."""
    data = bytearray(path.read_bytes())
    central = data.index(b"PK\x01\x02")
    struct.pack_into(fmt, data, central + offset, value)
    local = {8: 6, 24: 22}[offset]  # flag bits, uncompressed size: their place in the local header
    struct.pack_into(fmt, data, data.index(b"PK\x03\x04") + local, value)
    path.write_bytes(bytes(data))


@pytest.fixture
def counting(monkeypatch):
    """The number of bytes inflated from zip members while a test runs."""
    inflated = []
    real = zipfile.ZipExtFile.read

    def read(self, n=-1):
        data = real(self, n)
        inflated.append(len(data))
        return data

    monkeypatch.setattr(zipfile.ZipExtFile, "read", read)
    return inflated


# ---------------------------------------------------------------- plain prediction files

def test_plain_file_formats_bom_comments_and_line_numbers(tmp_path):
    f = tmp_path / "output.txt"
    f.write_bytes("\ufeffA0005_10_00.bmp,1450.5\n# a comment\n\nA0005_10_01.bmp 1200\r\n.\\Dis\\x.bmp, -3e-2\n"
                  .encode())
    sub = read_submission(f)
    assert sub.names == ("A0005_10_00.bmp", "A0005_10_01.bmp", "Dis/x.bmp")
    assert sub.scores.tolist() == [1450.5, 1200.0, -0.03] and sub.scores.dtype == np.float64
    assert sub.lines == (1, 4, 5) and sub.readme is None and sub.source == str(f)
    with pytest.raises(ValueError):
        sub.scores[0] = 1.0  # read-only


def test_csv_with_header(tmp_path):
    f = tmp_path / "pred.csv"
    f.write_text("image,ref,prediction\nd/a.png,r.png,0.5\n\nd/b.png,r.png,0.25\n")
    sub = read_submission(f)
    assert sub.names == ("d/a.png", "d/b.png") and sub.scores.tolist() == [0.5, 0.25] and sub.lines == (2, 4)


def test_label_table_reader_drops_the_bom_and_counts_every_line(tmp_path):
    f = tmp_path / "labels.csv"
    f.write_bytes("\ufeffdist,mos\n\n# note\na.png,3.5\nb.png,2\n".encode())
    assert [(n, r.dist, r.score) for n, r in numbered_rows(f)] == [(4, "a.png", 3.5), (5, "b.png", 2.0)]
    g = tmp_path / "list.txt"
    g.write_bytes("\ufeffmy image.png,1\nb.png 2\n".encode())
    assert [(r.dist, r.score) for r in read_rows(g)] == [("my image.png", 1.0), ("b.png", 2.0)]
    (tmp_path / "three.txt").write_text("a.png,1\nb.png,2,3\n")
    with pytest.raises(InputError, match=r"three.txt, line 2: expected 'name,score'"):
        read_rows(tmp_path / "three.txt")


@pytest.mark.parametrize("score, problem", [("nan", "is not finite"), ("inf", "is not finite"),
                                            ("-Infinity", "is not finite"), ("high", "is not a number")])
def test_bad_scores_name_the_line(tmp_path, score, problem):
    f = tmp_path / "output.txt"
    f.write_text(f"a.bmp,0.5\n\nb.bmp,{score}\n")
    with pytest.raises(InputError, match=rf"output.txt, line 3: score '{score}' {problem}\. Write every score"):
        read_submission(f)


def test_duplicate_names_give_both_lines(tmp_path):
    f = tmp_path / "output.txt"
    f.write_text("a.bmp,1\nb.bmp,2\n# x\nA.BMP,3\n")
    with pytest.raises(InputError, match=r"lines 1 and 4: image 'A.BMP' is given twice"):
        read_submission(f)


def test_not_utf8_names_the_line(tmp_path):
    f = tmp_path / "output.txt"
    f.write_bytes(b"a.bmp,1\ncaf\xe9.bmp,2\n")
    with pytest.raises(InputError, match=r"output.txt, line 2: byte 0xe9 is not UTF-8"):
        read_submission(f)


def test_plain_file_caps_and_readme_requirement(tmp_path):
    f = tmp_path / "output.txt"
    f.write_text("".join(f"img{i}.bmp,{i}\n" for i in range(500)))
    with pytest.raises(InputError, match="larger than the cap of 1000 bytes"):
        read_submission(f, max_bytes=1000)
    with pytest.raises(InputError, match="500 scored lines, over the cap of 100"):
        read_submission(f, max_lines=100)
    with pytest.raises(InputError, match="a submission is a zip holding output.txt and readme.txt"):
        read_submission(f, require_readme=True)
    with pytest.raises(InputError, match="not found"):
        read_submission(tmp_path / "nope.txt")


# ---------------------------------------------------------------- matching

def test_live_clash_is_ambiguous_and_relative_paths_match(tmp_path):
    bare = tmp_path / "bare.txt"
    bare.write_text("img1.bmp,0.9\n")
    with pytest.raises(InputError, match=r"bare.txt, line 1: 'img1.bmp' is ambiguous: it matches 3 expected images "
                                         r"\(jp2k/img1.bmp, fastfading/img1.bmp, wn/img1.bmp\).*'jp2k/img1.bmp'"):
        match_submission(read_submission(bare), LIVE)
    rel = tmp_path / "rel.txt"
    rel.write_text("WN/img1.BMP,3\njp2k/img1.bmp,1\nfastfading\\img1.bmp,2\n")
    assert match_submission(read_submission(rel), LIVE).tolist() == [1.0, 2.0, 3.0]
    # the same set under a dataset root: the trailing components still match, and exactly once
    assert match_submission(read_submission(rel), ["live/" + p for p in LIVE]).tolist() == [1.0, 2.0, 3.0]


def test_bare_names_match_pipal_paths_and_an_exact_path_wins(tmp_path):
    f = tmp_path / "output.txt"
    f.write_text("A0005_10_01.bmp,7\nA0005_10_00.bmp,5\n")
    expected = ["Val_Dis/A0005_10_00.bmp", "Val_Dis/A0005_10_01.bmp"]
    assert match_submission(read_submission(f), expected).tolist() == [5.0, 7.0]
    g = tmp_path / "exact.txt"
    g.write_text("sub/img.bmp,2\nimg.bmp,1\n")  # 'img.bmp' is an expected path itself: it is not ambiguous
    assert match_submission(read_submission(g), ["img.bmp", "sub/img.bmp"]).tolist() == [1.0, 2.0]


def test_one_image_named_by_two_lines(tmp_path):
    f = tmp_path / "output.txt"
    f.write_text("jp2k/img1.bmp,1\nfastfading/img1.bmp,2\nwn/img1.bmp,3\nlive/jp2k/img1.bmp,4\n")
    with pytest.raises(InputError, match=r"lines 1 and 4: 'jp2k/img1.bmp' and 'live/jp2k/img1.bmp' name the same"):
        match_submission(read_submission(f), ["live/" + p for p in LIVE])


def test_missing_and_extra_names(tmp_path):
    f = tmp_path / "output.txt"
    f.write_text("a.bmp,1\nb.bmp,2\nzzz.bmp,9\n")
    sub = read_submission(f)
    expected = ["d/a.bmp", "d/b.bmp", "d/c.bmp", "d/e.bmp"]
    with pytest.raises(InputError, match=r"no score for 2 of the 4 expected images \(d/c.bmp, d/e.bmp\); "
                                         r"1 lines name no expected image \(line 3 'zzz.bmp'\)"):
        match_submission(sub, expected)
    with pytest.raises(InputError, match=r"1 lines name no expected image"):
        match_submission(sub, expected[:2])
    assert match_submission(sub, expected[:2], allow_extra=True).tolist() == [1.0, 2.0]
    with pytest.raises(InputError, match="the expected names list 'd/a.bmp' twice"):
        match_submission(sub, ["d/a.bmp", "d/b.bmp", "D/A.bmp"])


def test_many_names_match(tmp_path):
    expected = [f"Test_Dis/A{i:04d}_{j:02d}_{k:02d}.bmp" for i in range(150) for j in range(20) for k in range(10)]
    order = np.random.default_rng(0).permutation(len(expected))
    f = tmp_path / "output.txt"
    f.write_text("".join(f"{Path(expected[i]).name},{i}\n" for i in order))
    assert np.array_equal(match_submission(read_submission(f), expected), np.arange(len(expected), dtype=float))


# ---------------------------------------------------------------- zips

def test_zip_with_bom_and_harmless_members(tmp_path):
    z = _zip(tmp_path / "sub.zip", {"output.txt": "\ufeffa.bmp,0.5\nb.bmp,0.25\n", "README.TXT": "\ufeff" + README,
                                    "__MACOSX/._output.txt": b"\0\1junk", ".DS_Store": b"\0\0\0\1Bud1"})
    sub = read_submission(z, require_readme=True)
    assert sub.names == ("a.bmp", "b.bmp") and sub.scores.tolist() == [0.5, 0.25]
    assert sub.source == f"output.txt in {z}"
    assert sub.readme == Readme(0.25, False, False, "two nets", {
        "runtime per image [s]": "0.25", "CPU[1] / GPU[0]": "1", "Extra Data [1] / No Extra Data [0]": "0",
        "Other description": "two nets"})


def test_zip_with_a_folder(tmp_path):
    z = _zip(tmp_path / "sub.zip", {"results/output.txt": "a.bmp,1\n", "results/readme.txt": README})
    with pytest.raises(InputError, match=r"sub.zip holds a folder \(results/, member 'results/output.txt'\), but "
                                         r"output.txt and readme.txt must be at its top level\. Zip the files, "
                                         r"not their folder"):
        read_submission(z)


def test_zip_member_rules(tmp_path):
    cases = {
        "two.zip": ({"output.txt": "a.bmp,1\n", "Output.TXT": "a.bmp,2\n"},
                    r"2 members named output.txt \(output.txt, Output.TXT\)\. Keep exactly one"),
        "none.zip": ({"readme.txt": README}, "holds no output.txt"),
        "other.zip": ({"output.txt": "a.bmp,1\n", "model.py": "print()"}, "unexpected member 'model.py'"),
        "dotdot.zip": ({"../output.txt": "a.bmp,1\n"}, r"member '\.\./output.txt' has an absolute path or '\.\.'"),
        "abs.zip": ({"/tmp/output.txt": "a.bmp,1\n"}, "has an absolute path"),
        "noreadme.zip": ({"output.txt": "a.bmp,1\n"}, "holds no readme.txt"),
    }
    for name, (members, message) in cases.items():
        with pytest.raises(InputError, match=message):
            read_submission(_zip(tmp_path / name, members), require_readme=True)
    assert read_submission(tmp_path / "noreadme.zip").scores.tolist() == [1.0]  # readme optional by default


def test_encrypted_and_damaged_zips(tmp_path):
    z = _zip(tmp_path / "enc.zip", {"output.txt": "a.bmp,1\n"})
    _patch_central(z, 8, "<H", 0x1)
    with pytest.raises(InputError, match="'output.txt' is encrypted"):
        read_submission(z)
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(InputError, match="not a readable zip archive"):
        read_submission(tmp_path / "bad.zip")


def test_member_over_the_cap(tmp_path, counting):
    text = "".join(f"img{i:05d}.bmp,{i}\n" for i in range(1000))
    z = _zip(tmp_path / "big.zip", {"output.txt": text})
    with pytest.raises(InputError, match=rf"output.txt in .*big.zip declares {len(text)} bytes, over the cap of 4096"):
        read_submission(z, max_bytes=4096)
    assert sum(counting) == 0


def test_zip_bomb_is_refused_without_inflating_it(tmp_path, counting):
    size = 6 << 20
    z = _zip(tmp_path / "bomb.zip", {"output.txt": b"0" * size, "readme.txt": README})
    assert zipfile.ZipFile(z).getinfo("output.txt").compress_size < size // 500
    with pytest.raises(InputError, match="inflates more than 100 times its compressed size"):
        read_submission(z)
    assert RATIO_FREE < sum(counting) <= RATIO_FREE + CHUNK + len(README)


def test_a_false_declared_size_is_not_trusted(tmp_path, counting):
    z = _zip(tmp_path / "liar.zip", {"output.txt": b"1" * (1 << 20)})
    _patch_central(z, 24, "<I", 100)  # declares 100 bytes, holds 1 MiB
    with pytest.raises(InputError, match="output.txt in .*liar.zip cannot be read"):
        read_submission(z, max_bytes=4096)
    assert sum(counting) <= 100


# ---------------------------------------------------------------- readme

def test_readme_fields_and_the_cpu_gpu_convention():
    r = parse_readme("runtime per image [s] : 12.5\nCPU[1] / GPU[0] : 0\nExtra Data [1] / No Extra Data [0] : 1\n"
                     "Other description : a transformer\n  trained on KADID\nFull-Reference [1] / Non-Reference [0] : 1",
                     "readme.txt")
    assert (r.runtime, r.gpu, r.extra_data, r.description) == (12.5, True, True, "a transformer trained on KADID")
    assert r.fields["Full-Reference [1] / Non-Reference [0]"] == "1"
    assert parse_readme(r.as_text(), "again") == r
    assert r.as_text().splitlines()[:2] == ["runtime per image [s] : 12.5", "CPU[1] / GPU[0] : 0"]
    cpu = Readme(0.5, gpu=False, extra_data=False)
    assert cpu.as_text() == ("runtime per image [s] : 0.5\nCPU[1] / GPU[0] : 1\n"
                             "Extra Data [1] / No Extra Data [0] : 0\nOther description :\n")
    assert parse_readme(cpu.as_text(), "x").gpu is False


@pytest.mark.parametrize("text, message", [
    ("CPU[1] / GPU[0] : 1\nExtra Data [1] / No Extra Data [0] : 0\n",
     r"readme.txt: no 'runtime per image \[s\] : \.\.\.' line"),
    ("runtime per image [s] : 0.1\n", r"no 'CPU\[1\] / GPU\[0\] : \.\.\.' and no 'Extra Data \[1\] / No Extra Data \[0\] : \.\.\.' line"),
    ("runtime per image [s] : fast\nCPU[1] / GPU[0] : 1\nExtra Data [1] / No Extra Data [0] : 0\n",
     r"readme.txt, line 1: runtime 'fast' is not a number of seconds"),
    ("runtime per image [s] : 0.1\n\nCPU[1] / GPU[0] : GPU\nExtra Data [1] / No Extra Data [0] : 0\n",
     r"readme.txt, line 3: 'GPU' is not 0 or 1\. Write 1 for CPU or 0 for GPU"),
    ("runtime per image [s] : 0.1\nruntime per image [s]: 0.2\n", r"readme.txt, lines 1 and 2: the field"),
    ("just some words\n", r"readme.txt, line 1: expected 'key : value'"),
])
def test_bad_readmes(text, message):
    with pytest.raises(InputError, match=message):
        parse_readme(text, "readme.txt")


def test_bad_readme_inside_a_zip(tmp_path):
    z = _zip(tmp_path / "sub.zip", {"output.txt": "a.bmp,1\n", "readme.txt": "runtime per image [s] : 0.1\n"})
    with pytest.raises(InputError, match=r"readme.txt in .*sub.zip: no 'CPU\[1\] / GPU\[0\]"):
        read_submission(z, require_readme=True)
    with pytest.raises(InputError, match=r"readme.txt in .*sub.zip: no 'CPU\[1\] / GPU\[0\]"):
        check_submission(z)
    sub = read_submission(z)  # scores to evaluate need no readme
    assert sub.readme is None and sub.scores.tolist() == [1.0]


# ---------------------------------------------------------------- pack and check

def test_pack_then_check_round_trip(tmp_path):
    readme = Readme(0.125, gpu=True, extra_data=False, description="IQT ensemble")
    preds = {"A0005_10_00.bmp": 1450.123456789, "A0005_10_01.bmp": 0.1 + 0.2, "A0006_00_00.bmp": -1e-300}
    out = pack_submission(preds, readme, tmp_path / "sub.zip")
    assert out == tmp_path / "sub.zip" and [p.name for p in tmp_path.iterdir()] == ["sub.zip"]
    assert sorted(zipfile.ZipFile(out).namelist()) == ["output.txt", "readme.txt"]
    expected = ["Val_Dis/A0006_00_00.bmp", "Val_Dis/A0005_10_00.bmp", "Val_Dis/A0005_10_01.bmp"]
    sub = check_submission(out, expected)
    assert sub.scores.tolist() == [-1e-300, 1450.123456789, 0.1 + 0.2]  # exact: scores are written with repr
    assert sub.names == ("A0006_00_00.bmp", "A0005_10_00.bmp", "A0005_10_01.bmp") and sub.lines == (3, 1, 2)
    assert (sub.readme.runtime, sub.readme.gpu, sub.readme.extra_data, sub.readme.description) == \
        (0.125, True, False, "IQT ensemble")
    assert sub.readme.fields == {"runtime per image [s]": "0.125", "CPU[1] / GPU[0]": "0",
                                 "Extra Data [1] / No Extra Data [0]": "0", "Other description": "IQT ensemble"}
    # a packed file packs again to the same bytes (fixed member dates)
    again = pack_submission(out, readme, tmp_path / "again.zip")
    assert again.read_bytes() == out.read_bytes()


def test_pack_refuses_to_overwrite_and_bad_predictions(tmp_path):
    readme = Readme(1.0, gpu=False, extra_data=True)
    out = tmp_path / "sub.zip"
    out.write_bytes(b"mine")
    with pytest.raises(InputError, match="exists; allow replacing it"):
        pack_submission({"a.bmp": 1.0}, readme, out)
    assert out.read_bytes() == b"mine"
    pack_submission({"a.bmp": 1.0}, readme, out, overwrite=True)
    assert check_submission(out).scores.tolist() == [1.0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub.zip"]  # no temporary file left
    for preds, message in [({"a,b.bmp": 1.0}, "a comma"), ({"a.bmp": float("nan")}, "finite"),
                           ({"a.bmp": 1.0, "A.BMP": 2.0}, "given twice"), ({}, "no predictions")]:
        with pytest.raises(InputError, match=message):
            pack_submission(preds, readme, tmp_path / "x.zip")
    assert not (tmp_path / "x.zip").exists()
    with pytest.raises(InputError, match="seconds"):
        Readme(float("inf"), gpu=False, extra_data=False)
    with pytest.raises(InputError, match="one line"):
        Readme(1.0, gpu=False, extra_data=False, description="two\nlines")


def test_read_names(tmp_path):
    (tmp_path / "names.txt").write_bytes("\ufeffjp2k/img1.bmp\n# skip\nmy image.bmp\n".encode())
    assert read_names(tmp_path / "names.txt") == ("jp2k/img1.bmp", "my image.bmp")
    (tmp_path / "labels.txt").write_text("jp2k/img1.bmp 40.5\nwn/img1.bmp 61\n")
    assert read_names(tmp_path / "labels.txt") == ("jp2k/img1.bmp", "wn/img1.bmp")
    (tmp_path / "labels.csv").write_text("dist,ref,dmos\njp2k/img1.bmp,refs/a.bmp,40.5\n")
    assert read_names(tmp_path / "labels.csv") == ("jp2k/img1.bmp",)
    (tmp_path / "twice.txt").write_text("a.bmp\nb.bmp\na.bmp\n")
    with pytest.raises(InputError, match="lines 1 and 3"):
        read_names(tmp_path / "twice.txt")


def test_cli_pack_and_check(tmp_path):
    runner = CliRunner()
    preds = tmp_path / "preds.txt"
    preds.write_text("".join(f"{p},{k + 0.5}\n" for k, p in enumerate(LIVE)))
    out = tmp_path / "sub.zip"
    args = ["submission", "pack", str(preds), "--runtime", "0.3", "--gpu", "--extra-data", "1",
            "--description", "deep features", "-o", str(out)]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert f"OK output.txt in {out}: 3 scores" in res.stdout and "CPU[1] / GPU[0] : 0" in res.stdout
    sub = check_submission(out, LIVE)
    assert sub.scores.tolist() == [0.5, 1.5, 2.5]
    assert (sub.readme.runtime, sub.readme.gpu, sub.readme.extra_data) == (0.3, True, True)

    res = runner.invoke(app, args)
    assert res.exit_code != 0 and isinstance(res.exception, InputError) and "exists" in str(res.exception)
    assert runner.invoke(app, args[:-2] + ["-o", str(out), "--overwrite", "--cpu"]).exit_code == 0
    assert check_submission(out).readme.gpu is False

    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"{p},{k * 10}\n" for k, p in enumerate(LIVE)))
    res = runner.invoke(app, ["submission", "check", str(out), "--names", str(labels)])
    assert res.exit_code == 0, res.output
    assert "3 scores, one for each of the 3 expected names" in res.stdout
    assert "Other description : deep features" in res.stdout

    bare = tmp_path / "bare.txt"
    bare.write_text("img1.bmp,1\n")
    assert runner.invoke(app, ["submission", "pack", str(bare), "--runtime", "1", "-o",
                               str(tmp_path / "bare.zip")]).exit_code == 0
    res = runner.invoke(app, ["submission", "check", str(tmp_path / "bare.zip"), "--names", str(labels)])
    assert isinstance(res.exception, InputError) and "ambiguous" in str(res.exception)


@pytest.mark.parametrize("mode,what", [(0o120777, "symbolic link"), (0o020644, "special file")])
def test_links_and_special_members_are_refused(tmp_path, mode, what):
    """The one parser refuses a member that is not a plain file (so `submission check` and the server agree)."""
    path = tmp_path / "sub.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in (("output.txt", "a.png,1\n"), ("readme.txt", "runtime per image [s] : 1\n")):
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = ((mode if name == "output.txt" else 0o100644)) << 16
            zf.writestr(info, text)
    with pytest.raises(InputError, match=f"member 'output.txt' is a {what}|symbolic link or special file"):
        check_submission(path, ["a.png"])
