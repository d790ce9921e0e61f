"""What a score depends on, as one short hash: the metric's code, its parameter files and its options.

A stored score is reused only under the same fingerprint, so editing a shared operator, retraining a
checkpoint under the same file name, or changing an option all make the old scores stale.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import json
from pathlib import Path

from .registry import MetricSpec, get_info

_DIGESTS: dict[tuple, str] = {}


def file_digest(path: str | Path) -> str:
    """sha256 of a file's content, remembered per (path, size, modification time)."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        with p.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


_IMPORTS: dict[tuple, list[ast.AST]] = {}


def _import_nodes(path: Path) -> list[ast.AST]:
    """The import statements of a source file, parsed once per (path, size, modification time)."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _IMPORTS:
        tree = ast.parse(path.read_bytes())
        _IMPORTS[key] = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    return _IMPORTS[key]


def source_files(module: str) -> list[Path]:
    """The source files of ``module`` and of every iqarena module it imports, directly or through others
    (imports anywhere in the files, found by parsing them). The top-level ``iqarena/__init__`` counts as a
    file, but its imports are not followed (they would pull in every metric)."""
    def spec_of(name):
        try:
            return importlib.util.find_spec(name)
        except (ImportError, ValueError):  # "x.y" where x is a module, not a package
            return None

    files, stack = {}, [module]
    while stack:
        name = stack.pop()
        spec = None if name in files else spec_of(name)
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            continue
        files[name] = Path(spec.origin)
        if name == "iqarena":
            continue
        package = name if spec.submodule_search_locations is not None else name.rpartition(".")[0]
        for node in _import_nodes(files[name]):
            if isinstance(node, ast.ImportFrom):
                base = importlib.util.resolve_name("." * node.level + (node.module or ""), package) \
                    if node.level else (node.module or "")
                if base.split(".")[0] == "iqarena":
                    stack += [base] + [f"{base}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                stack += [a.name for a in node.names if a.name.split(".")[0] == "iqarena"]
    return sorted(files.values())


def _code(target) -> list[bytes]:
    """The code a target runs: its module's file and every iqarena file that imports, or, for a target
    defined outside a package (``__main__``, a notebook), its own source text."""
    target = inspect.unwrap(target)
    module = getattr(target, "__module__", None) or ""
    if module and module != "__main__":
        files = source_files(module)
        if files:
            return [f.name.encode() + f.read_bytes() for f in files]
    try:
        return [inspect.getsource(target).encode()]
    except (OSError, TypeError):
        return [getattr(target, "__qualname__", type(target).__qualname__).encode()]


def _weights(names: tuple[str, ...]) -> list[str]:
    from ..weights import CATALOGUE, locate

    out = []
    for n in names:
        e = CATALOGUE[n] if n in CATALOGUE else None
        published = e and (e.sha256 or e.git_sha1)
        path = None if published or e is None else locate(n)
        out.append(f"{n}:{published or (file_digest(path) if path else 'missing')}")
    return out


def _option_value(v):
    """An option as it enters the hash: a path to an existing file stands for its content."""
    if isinstance(v, (str, Path)) and len(str(v)) < 4096:
        p = Path(v)
        if p.suffix and p.is_file():
            return f"file:{file_digest(p)}"
    return v


def fingerprint(spec: MetricSpec | str) -> str:
    """16 hex digits identifying the scores of ``spec`` (a MetricSpec or a metric name)."""
    spec = spec if isinstance(spec, MetricSpec) else MetricSpec.of(spec)
    info = get_info(spec.name)
    options = {k: _option_value(v) for k, v in {**info.defaults, **dict(spec.options)}.items()}
    h = hashlib.sha256(json.dumps(options, sort_keys=True, default=repr).encode())
    for part in _code(info.target):
        h.update(part)
    for part in _weights(info.weights) + [file_digest(f) for f in info.files]:
        h.update(part.encode())
    return h.hexdigest()[:16]
