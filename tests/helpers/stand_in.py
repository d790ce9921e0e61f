"""Stand-ins for published parameter files: a state_dict saved where the weights cache looks for a catalogue
entry, with the catalogue patched to that file's hash and size, so a test runs the real loading and checking
code without the network."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from iqarena import weights


def catalogue_stand_in(monkeypatch, home: Path, name: str, state_dict: dict) -> Path:
    """Save ``state_dict`` as catalogue entry ``name``'s file under ``home`` (set as IQARENA_HOME) and make the
    catalogue expect exactly that file; returns its path."""
    cache = Path(home) / "weights"
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / weights.CATALOGUE[name].filename
    torch.save(state_dict, path)
    monkeypatch.setenv("IQARENA_HOME", str(home))
    monkeypatch.setitem(weights.CATALOGUE, name, replace(weights.CATALOGUE[name], sha256=weights.digest(path),
                                                         size=path.stat().st_size))
    return path
