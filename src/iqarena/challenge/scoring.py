"""Scoring one submission file against a phase's hidden labels, with the project's own parser and statistics.

Only aggregates leave this module (main score, SRCC, PLCC, the count): never a per-image value. The
reason of a refusal is the parser's message with the server's file path replaced by the uploaded name.
"""

from __future__ import annotations

import hashlib
import math
from functools import lru_cache
from pathlib import Path

from ..errors import InputError
from ..evaluate import evaluate
from ..submission import check_submission

#: the code whose change changes a score; its hash is part of every score's ``scorer_version``
_SCORER_MODULES = ("submission.py", "evaluate/stats.py", "datasets/table.py", "challenge/scoring.py")


@lru_cache(maxsize=1)
def scorer_version() -> str:
    """``<iqarena version>+<hash of the scoring code>``, recorded with every score."""
    from .. import __version__

    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for name in _SCORER_MODULES:
        digest.update((root / name).read_bytes())
    return f"{__version__}+{digest.hexdigest()[:12]}"


def score_file(path: str | Path, names, labels, shown: str) -> dict:
    """The aggregates of one submission zip. InputError (with ``shown`` for the path) for the participant's
    faults; anything else is the server's."""
    path = Path(path)
    try:
        sub = check_submission(path, names)
        result = evaluate(sub.scores, labels, higher_better=True)
    except InputError as exc:
        raise InputError(str(exc).replace(str(path), shown)) from None
    if not (math.isfinite(result.srcc) and math.isfinite(result.plcc)):
        raise InputError(f"{shown}: the correlations are undefined (every score is the same?). Give scores that "
                         "vary with quality.")
    readme = sub.readme
    return {"main": result.main, "srcc": result.srcc, "plcc": result.plcc, "n": result.n,
            "runtime": readme.runtime, "gpu": readme.gpu, "extra_data": readme.extra_data,
            "description": readme.description[:2000], "scorer_version": scorer_version()}
