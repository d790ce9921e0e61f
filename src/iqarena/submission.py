"""Challenge submissions: the one parser of ``output.txt`` + ``readme.txt``, for evaluate, the CLI and the server.

A submission is a zip holding, at its top level, ``output.txt`` (one ``name,score`` line per distorted
image) and ``readme.txt`` (the NTIRE fact lines). Prediction files without a readme (a plain
``output.txt``, a CSV with a header) are read by the same code. Everything wrong with a user's file is
an :class:`~iqarena.errors.InputError` naming the file, the line where there is one, the problem and
the fix. The rules and caps are listed in ``docs/submission.md``.

>>> sub = check_submission("sub.zip", names=[r.dist for r in dataset.rows])   # strict, readme required
>>> sub.scores                                 # float64, in the order of ``names``
>>> match_submission(read_submission("output.txt"), expected)  # any prediction file, in expected order
"""

from __future__ import annotations

import math
import re
import zipfile
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from .datasets.table import data_lines, decode_text, is_number, numbered_rows, read_text_file, split_line
from .errors import InputError
from .io import atomic_output, output_path

MAX_BYTES = 8 << 20            # output.txt (or a plain prediction file), uncompressed
# a zip's total (its size on disk, and the sizes its members declare) is capped at
# max_bytes + MAX_README_BYTES + MAX_OTHER_BYTES
MAX_LINES = 200_000            # scored lines in output.txt
MAX_README_BYTES = 64 << 10    # readme.txt, uncompressed
MAX_OTHER_BYTES = 1 << 20      # room for ignored members (__MACOSX/, .DS_Store ...) in the total cap
MAX_MEMBERS = 64               # entries in the zip's directory
MAX_RATIO = 100                # uncompressed / compressed size of a member once it passes RATIO_FREE
RATIO_FREE = 1 << 20           # members up to this size are never refused for their compression ratio
CHUNK = 64 << 10               # bytes inflated per read

OUTPUT = "output.txt"
README = "readme.txt"
#: what zip tools add on their own; such members are skipped without being read
IGNORED_FOLDERS = ("__MACOSX",)
IGNORED_FILES = (".DS_Store", "Thumbs.db", "desktop.ini")

RUNTIME_KEY = "runtime per image [s]"
DEVICE_KEY = "CPU[1] / GPU[0]"
EXTRA_KEY = "Extra Data [1] / No Extra Data [0]"
DESCRIPTION_KEY = "Other description"


# ---------------------------------------------------------------- readme.txt

def _key(text: str) -> str:
    """A readme key for comparison: case and spaces ignored."""
    return "".join(text.lower().split())


STANDARD_KEYS = {_key(k): k for k in (RUNTIME_KEY, DEVICE_KEY, EXTRA_KEY, DESCRIPTION_KEY)}
TEMPLATE = (f"'{RUNTIME_KEY} : 0.12', '{DEVICE_KEY} : 0' (1 = CPU, 0 = GPU), '{EXTRA_KEY} : 0', "
            f"'{DESCRIPTION_KEY} : ...'")


@dataclass(frozen=True)
class Readme:
    """The facts of a submission's ``readme.txt``.

    NTIRE's line ``CPU[1] / GPU[0] : v`` codes the device as v = 1 for CPU and v = 0 for GPU, so
    ``gpu`` is True exactly when that value is 0. ``fields`` holds every ``key : value`` line as
    written (read from a file) or the extra lines to write (built in code); ``as_text`` writes the
    four NTIRE lines from the typed values, then the other fields.
    """

    runtime: float
    gpu: bool
    extra_data: bool
    description: str = ""
    fields: dict[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self):
        if not _is_seconds(self.runtime):
            raise InputError(f"runtime per image must be a finite number of seconds >= 0, got {self.runtime!r}.")
        object.__setattr__(self, "runtime", float(self.runtime))
        texts = [self.description, *self.fields, *self.fields.values()]
        if any("\n" in t or "\r" in t for t in texts) or any(":" in k for k in self.fields):
            raise InputError("readme fields are one line each and a key holds no ':'; write the description "
                             "on one line.")

    def as_text(self) -> str:
        """``readme.txt`` in the NTIRE layout, one ``key : value`` line per field."""
        lines = [(RUNTIME_KEY, repr(self.runtime)), (DEVICE_KEY, "0" if self.gpu else "1"),
                 (EXTRA_KEY, "1" if self.extra_data else "0"), (DESCRIPTION_KEY, self.description)]
        lines += [(k, v) for k, v in self.fields.items() if _key(k) not in STANDARD_KEYS]
        return "".join(f"{k} : {v}".rstrip() + "\n" for k, v in lines)


def parse_readme(text: str, source: str) -> Readme:
    """A ``readme.txt``'s facts. Each ``key : value`` line is a field (split at its first ':'); a line
    without ':' continues the previous field's value. The runtime, device and extra-data lines are
    required; the description is optional."""
    fields, first_line = _readme_fields(text, source)
    known = {_key(k): k for k in fields}
    missing = [k for k in (RUNTIME_KEY, DEVICE_KEY, EXTRA_KEY) if _key(k) not in known]
    if missing:
        raise InputError(f"{source}: no {' and no '.join(repr(k + ' : ...') for k in missing)} line. A readme "
                         f"holds the NTIRE lines {TEMPLATE}.")

    def value(key: str) -> tuple[str, str]:
        written = known[_key(key)]
        return fields[written], f"{source}, line {first_line[written]}"

    runtime, where = value(RUNTIME_KEY)
    if not _is_seconds(runtime):
        raise InputError(f"{where}: runtime {runtime!r} is not a number of seconds >= 0. Write it as "
                         f"'{RUNTIME_KEY} : 0.12'.")
    device, extra = value(DEVICE_KEY), value(EXTRA_KEY)
    description = fields[known[_key(DESCRIPTION_KEY)]] if _key(DESCRIPTION_KEY) in known else ""
    return Readme(float(runtime), _flag(*device, "1 for CPU or 0 for GPU") == 0,
                  _flag(*extra, "1 for extra training data or 0 for none") == 1, description, fields)


def _readme_fields(text: str, source: str) -> tuple[dict[str, str], dict[str, int]]:
    """Every field as written, and the line each starts on; InputError for a key given twice."""
    fields: dict[str, str] = {}
    first_line: dict[str, int] = {}
    seen: dict[str, str] = {}
    key = None
    for n, line in enumerate(text.removeprefix("\ufeff").splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        if ":" not in line:
            if key is None:
                raise InputError(f"{source}, line {n}: expected 'key : value', got {line!r}. A readme holds the "
                                 f"NTIRE lines {TEMPLATE}.")
            fields[key] = f"{fields[key]} {line}".strip()
            continue
        key, value = (part.strip() for part in line.split(":", 1))
        if _key(key) in seen:
            raise InputError(f"{source}, lines {first_line[seen[_key(key)]]} and {n}: the field {key!r} is given "
                             "twice. Keep one of them.")
        seen[_key(key)] = key
        fields[key], first_line[key] = value, n
    return fields, first_line


def _is_seconds(value) -> bool:
    """Whether ``value`` is a finite number >= 0 (a float or its text)."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return False
    return math.isfinite(seconds) and seconds >= 0


def _flag(text: str, where: str, meaning: str) -> int:
    """A readme code, 0 or 1; InputError at ``where`` otherwise."""
    if text not in ("0", "1"):
        raise InputError(f"{where}: {text!r} is not 0 or 1. Write {meaning}.")
    return int(text)


# ---------------------------------------------------------------- submissions

@dataclass(frozen=True, eq=False)
class Submission:
    """Scored images as submitted: ``names`` as written (posix separators), ``scores`` (float64, read-only)
    and the ``lines`` they stand on in ``source``; ``readme`` when the submission is a zip with one."""

    source: str
    names: tuple[str, ...]
    scores: np.ndarray
    lines: tuple[int, ...]
    readme: Readme | None = None

    def __post_init__(self):
        scores = np.array(self.scores, dtype=np.float64)
        scores.setflags(write=False)
        object.__setattr__(self, "scores", scores)
        if not len(self.names) == len(scores) == len(self.lines):
            raise InputError(f"{self.source}: {len(self.names)} names, {len(scores)} scores and {len(self.lines)} "
                             "line numbers; give one of each per image.")

    def __len__(self) -> int:
        return len(self.names)

    def take(self, index: Sequence[int] | np.ndarray) -> "Submission":
        """The entries at ``index``, in that order."""
        index = np.asarray(index, dtype=np.intp)
        return replace(self, names=tuple(self.names[i] for i in index), scores=self.scores[index],
                       lines=tuple(self.lines[i] for i in index))


def read_submission(path: str | Path, *, require_readme: bool = False, max_bytes: int = MAX_BYTES,
                    max_lines: int = MAX_LINES) -> Submission:
    """A submission zip, or a prediction file (``name,score`` / ``name score`` lines, or a CSV with a header).

    ``require_readme``: a plain file is refused and the zip must hold a valid ``readme.txt``. Without
    it the readme is optional: ``readme`` is None when the zip has none or its facts do not parse
    (scores to evaluate need no readme), while the zip's layout and caps are checked all the same.
    ``max_bytes``: the cap on the uncompressed size of the scores; ``max_lines``: on their count.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"submission file {path} not found. Check the path.")
    if path.suffix.lower() == ".zip" or zipfile.is_zipfile(path):
        return _read_zip(path, require_readme, max_bytes, max_lines)
    if require_readme:
        raise InputError(f"{path} is a plain file, but a submission is a zip holding {OUTPUT} and {README}. Make "
                         "one with `iqarena submission pack` (Python: pack_submission).")
    with path.open("rb") as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise InputError(f"{path} is larger than the cap of {max_bytes} bytes. Give one short 'name,score' line "
                         "per image.")
    return _parse_scores(decode_text(data, path), str(path), max_lines)


def _parse_scores(text: str, source: str, max_lines: int, readme: Readme | None = None) -> Submission:
    rows = numbered_rows(source, text=text)
    if len(rows) > max_lines:
        raise InputError(f"{source} holds {len(rows)} scored lines, over the cap of {max_lines}. Give one line per "
                         "image of the set being scored.")
    names = tuple(_normalise(r.dist) for _, r in rows)
    lines = tuple(n for n, _ in rows)
    _check_unique(names, lines, source)
    return Submission(source, names, np.array([r.score for _, r in rows], dtype=np.float64), lines, readme)


def _normalise(name: str) -> str:
    """A name with '/' separators, without './' parts or doubled separators."""
    name = name.strip().replace("\\", "/")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    return ("/" if name.startswith("/") else "") + "/".join(parts)


def _check_unique(names: Sequence[str], lines: Sequence[int], source: str) -> None:
    """InputError naming both lines of the first name (case-insensitive) that is given twice."""
    seen: dict[str, int] = {}
    for name, line in zip(names, lines):
        first = seen.setdefault(name.lower(), line)
        if first != line:
            raise InputError(f"{source}, lines {first} and {line}: image {name!r} is given twice. Keep one line "
                             "per image.")


# ---------------------------------------------------------------- the zip

def _read_zip(path: Path, require_readme: bool, max_bytes: int, max_lines: int) -> Submission:
    total = max_bytes + MAX_README_BYTES + MAX_OTHER_BYTES
    if path.stat().st_size > total:
        raise InputError(f"{path} is larger than the cap of {total} bytes for a submission zip. It should hold "
                         f"only {OUTPUT} and {README}.")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InputError(f"{path} is not a readable zip archive ({exc}). Make it again with `iqarena submission "
                         "pack` or a zip tool.") from None
    with zf:
        output, readme = _members(path, zf.infolist(), total)
        if readme is None and require_readme:
            raise InputError(f"{path} holds no {README}. Add it at the top level with the NTIRE lines {TEMPLATE}.")
        facts = None
        if readme is not None:
            where = f"{README} in {path}"
            data = _inflate(zf, readme, MAX_README_BYTES, where)
            try:
                facts = parse_readme(decode_text(data, where), where)
            except InputError:
                if require_readme:
                    raise
        where = f"{OUTPUT} in {path}"
        return _parse_scores(decode_text(_inflate(zf, output, max_bytes, where), where), where, max_lines, facts)


def _members(path: Path, infos: list[zipfile.ZipInfo],
             total: int) -> tuple[zipfile.ZipInfo, zipfile.ZipInfo | None]:
    """output.txt and readme.txt (None when absent), after checking every member against the rules."""
    if len(infos) > MAX_MEMBERS:
        raise InputError(f"{path} holds {len(infos)} members, over the cap of {MAX_MEMBERS}. A submission holds "
                         f"{OUTPUT} and {README} only.")
    declared = sum(i.file_size for i in infos)
    if declared > total:
        raise InputError(f"{path}: its members declare {declared} bytes, over the cap of {total}. A submission "
                         f"holds {OUTPUT} and {README} only.")
    found: dict[str, list[zipfile.ZipInfo]] = {OUTPUT: [], README: []}
    for info in infos:
        name = _checked_name(path, info)
        if name is not None:
            found[name].append(info)
    for name, hits in found.items():
        if len(hits) > 1:
            raise InputError(f"{path} holds {len(hits)} members named {name} ({', '.join(i.filename for i in hits)}"
                             f"). Keep exactly one {name}.")
    if not found[OUTPUT]:
        raise InputError(f"{path} holds no {OUTPUT}. Put the scores, one 'name,score' line per image, in "
                         f"{OUTPUT} at the top level of the zip.")
    return found[OUTPUT][0], (found[README] or [None])[0]


def _checked_name(path: Path, info: zipfile.ZipInfo) -> str | None:
    """``output.txt`` or ``readme.txt`` for those members, None for an ignored one; InputError otherwise."""
    name = info.filename.replace("\\", "/")
    parts = name.rstrip("/").split("/")
    if name.startswith("/") or re.match(r"[A-Za-z]:", name) or ".." in parts:
        raise InputError(f"{path}: member {info.filename!r} has an absolute path or '..'. Zip {OUTPUT} and "
                         f"{README} themselves, with no path.")
    if info.flag_bits & 0x1:
        raise InputError(f"{path}: member {info.filename!r} is encrypted. Zip the files without a password.")
    kind = (info.external_attr >> 16) & 0o170000  # Unix file type, where the zip was made on Unix
    if info.create_system == 3 and kind not in (0, 0o100000, 0o040000):
        raise InputError(f"{path}: member {info.filename!r} is a symbolic link or special file. Zip the text "
                         "files themselves.")
    if parts[0] in IGNORED_FOLDERS or parts[-1] in IGNORED_FILES:
        return None
    if len(parts) > 1 or info.is_dir():
        raise InputError(f"{path} holds a folder ({parts[0]}/, member {info.filename!r}), but {OUTPUT} and "
                         f"{README} must be at its top level. Zip the files, not their folder (e.g. "
                         f"`cd {parts[0]} && zip ../submission.zip {OUTPUT} {README}`, or `iqarena submission "
                         "pack`).")
    if name.lower() not in (OUTPUT, README):
        raise InputError(f"{path}: unexpected member {info.filename!r}. A submission holds {OUTPUT} and {README} "
                         "only; remove the rest.")
    return name.lower()


def _inflate(zf: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int, where: str) -> bytes:
    """A member's bytes, inflated a chunk at a time and refused as soon as they pass ``cap`` or
    ``MAX_RATIO`` times the compressed size: the declared size is not trusted."""
    if info.file_size > cap:
        raise InputError(f"{where} declares {info.file_size} bytes, over the cap of {cap}. Give one short line "
                         "per image.")
    chunks, size = [], 0
    try:
        with zf.open(info) as fh:
            while chunk := fh.read(CHUNK):
                size += len(chunk)
                if size > cap:
                    raise InputError(f"{where} inflates past the cap of {cap} bytes. Give one short line per image.")
                if size > RATIO_FREE and size > MAX_RATIO * info.compress_size:
                    raise InputError(f"{where} inflates more than {MAX_RATIO} times its compressed size, which no "
                                     "list of scores does (a zip bomb?). Zip the real output.txt.")
                chunks.append(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OSError) as exc:
        raise InputError(f"{where} cannot be read ({exc}). Make the zip again with `iqarena submission pack` or a "
                         "zip tool (deflate or no compression).") from None
    return b"".join(chunks)


# ---------------------------------------------------------------- matching

def match_submission(sub: Submission, expected: Sequence[str], *, allow_extra: bool = False) -> np.ndarray:
    """The submitted scores in the order of ``expected`` (relative paths such as ``Val_Dis/A0005_10_00.bmp``).

    A name equal to an expected path (case-insensitive) matches that path alone; otherwise it matches
    every expected path it is a trailing run of path components of (``A0005_10_00.bmp`` matches
    ``Val_Dis/A0005_10_00.bmp``). InputError when a name matches several paths, when an expected
    image is matched by no line or by two, and (unless ``allow_extra``) when a line matches nothing.
    """
    return sub.scores[_match_indices(sub, expected, allow_extra)]


def _match_indices(sub: Submission, expected: Sequence[str], allow_extra: bool) -> np.ndarray:
    """For each expected path, the index of the submitted line that scores it."""
    keys = [_normalise(e).lower() for e in expected]
    full = {key: i for i, key in enumerate(keys)}
    if len(full) < len(keys):
        twice = next(e for i, (e, key) in enumerate(zip(expected, keys)) if full[key] != i)
        raise InputError(f"the expected names list {twice!r} twice. Expect each image once.")
    trailing: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        parts = key.split("/")
        for k in range(len(parts)):
            trailing.setdefault("/".join(parts[k:]), []).append(i)
    owner = np.full(len(keys), -1, dtype=np.intp)
    ambiguous, doubled, extra = [], [], []
    for j, name in enumerate(sub.names):
        key = name.lower()
        hits = [full[key]] if key in full else trailing.get(key, [])
        if len(hits) > 1:
            ambiguous.append((j, hits))
        elif not hits:
            extra.append(j)
        elif owner[hits[0]] >= 0:
            doubled.append((owner[hits[0]], j))
        else:
            owner[hits[0]] = j
    _raise_ambiguous(sub, expected, ambiguous)
    _raise_doubled(sub, doubled)
    _raise_unmatched(sub, expected, np.flatnonzero(owner < 0), [] if allow_extra else extra)
    return owner


def _shown(items: Sequence[str], limit: int = 5) -> str:
    """The first ``limit`` items, and how many there are when more."""
    return ", ".join(items[:limit]) + (f" ... ({len(items)} in all)" if len(items) > limit else "")


def _raise_ambiguous(sub: Submission, expected: Sequence[str], ambiguous: list[tuple[int, list[int]]]) -> None:
    if not ambiguous:
        return
    j, hits = ambiguous[0]
    more = f" ({len(ambiguous)} lines are ambiguous in all)" if len(ambiguous) > 1 else ""
    raise InputError(f"{sub.source}, line {sub.lines[j]}: {sub.names[j]!r} is ambiguous: it matches "
                     f"{len(hits)} expected images ({_shown([expected[i] for i in hits], 3)}){more}. Write each "
                     f"name as its path relative to the dataset root, e.g. {expected[hits[0]]!r}.")


def _raise_doubled(sub: Submission, doubled: list[tuple[int, int]]) -> None:
    if not doubled:
        return
    a, b = doubled[0]
    more = f" ({len(doubled)} images are scored twice in all)" if len(doubled) > 1 else ""
    raise InputError(f"{sub.source}, lines {sub.lines[a]} and {sub.lines[b]}: {sub.names[a]!r} and "
                     f"{sub.names[b]!r} name the same image{more}. Keep one line per image.")


def _raise_unmatched(sub: Submission, expected: Sequence[str], missing: Iterable[int], extra: list[int]) -> None:
    missing = [expected[i] for i in missing]
    problems = []
    if missing:
        problems.append(f"no score for {len(missing)} of the {len(expected)} expected images ({_shown(missing)})")
    if extra:
        problems.append(f"{len(extra)} lines name no expected image "
                        f"({_shown([f'line {sub.lines[j]} {sub.names[j]!r}' for j in extra])})")
    if problems:
        raise InputError(f"{sub.source}: {'; '.join(problems)}. Score every image of the set exactly once, named "
                         "by its file name or its path relative to the dataset root, and nothing else.")


# ---------------------------------------------------------------- packing and checking

def read_names(path: str | Path) -> tuple[str, ...]:
    """Expected image names from a file: one name per line, or a label table (``name,score`` lines or a
    CSV with a header; its image column). Blank and ``#`` lines are skipped."""
    path = Path(path)
    text = read_text_file(path, "names file")
    lines = data_lines(text)
    if not lines:
        raise InputError(f"{path} lists no names. Give one image name per line, or a label file.")
    parts = split_line(lines[0][1])
    if "," in lines[0][1] or (len(parts) == 2 and is_number(parts[1])):
        rows = numbered_rows(path, text=text)
        names, numbers = [r.dist for _, r in rows], [n for n, _ in rows]
    else:
        names, numbers = [ln.strip() for _, ln in lines], [n for n, _ in lines]
    _check_unique(names, numbers, str(path))
    return tuple(names)


def pack_submission(predictions: Mapping[str, float] | str | Path, readme: Readme, output: str | Path, *,
                    overwrite: bool = False) -> Path:
    """Write a submission zip (``output.txt`` + ``readme.txt`` at its top level) and return its path.

    ``predictions``: name -> score, or any file :func:`read_submission` reads (its own readme, if
    any, is replaced by ``readme``). The zip is written to a temporary file beside ``output`` and
    moved into place, so a reader never sees half of it; an existing ``output`` is kept unless
    ``overwrite``.
    """
    out = output_path(output, overwrite)
    if isinstance(predictions, Mapping):
        names, scores = _checked_predictions(predictions)
    else:
        sub = read_submission(predictions)
        names, scores = sub.names, sub.scores
    text = "".join(f"{name},{float(score)!r}\n" for name, score in zip(names, scores))
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_zip(out, {OUTPUT: text, README: readme.as_text()})
    return out


def _checked_predictions(predictions: Mapping[str, float]) -> tuple[list[str], list[float]]:
    """Names and finite scores that write as ``name,score`` lines and read back the same."""
    if not predictions:
        raise InputError("no predictions to pack. Give one score per image.")
    names, scores = [], []
    for name, score in predictions.items():
        if (not isinstance(name, str) or not name.strip() or name != name.strip() or name.startswith("#")
                or any(c in name for c in ",\r\n")):
            raise InputError(f"image name {name!r} cannot be written as an output.txt line (it is empty, starts "
                             "with '#', has surrounding spaces, a comma or a line break). Rename it.")
        score = float(score)
        if not math.isfinite(score):
            raise InputError(f"the score of {name!r} is {score}. Every score must be a finite number.")
        names.append(_normalise(name))
        scores.append(score)
    _check_unique(names, range(1, len(names) + 1), "the predictions (output.txt)")
    return names, scores


def _write_zip(out: Path, members: Mapping[str, str]) -> None:
    """``members`` (name -> text) as a deflated zip at ``out``, written to a temporary file then moved."""
    with atomic_output(out) as tmp, zipfile.ZipFile(tmp, "w") as zf:
        for name, text in members.items():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, text.encode("utf-8"))


def check_submission(path: str | Path, names: Sequence[str] | None = None) -> Submission:
    """A submission read strictly (a zip with ``readme.txt``); with ``names``, matched to them (no line may
    be left over) and returned in their order, so ``scores[i]`` scores ``names[i]``."""
    sub = read_submission(path, require_readme=True)
    return sub if names is None else sub.take(_match_indices(sub, names, allow_extra=False))
