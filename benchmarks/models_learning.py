"""The learning check of every challenge model in one table (docs/models.md).

Runs the models' own learning-check tests (tests/test_model_*.py, tests/test_recipe_noah.py: each model's
small setting trained on CPU on the synthetic PIPAL-layout set of tests/helpers/learning.py) with
IQARENA_LEARNING_REPORT set, so each check appends what it measured, then renders the validation SRCC on
the held-out references before and after training. One thread, as the tests run.

    python benchmarks/models_learning.py --json benchmarks/results-models-learning.json
    IQARENA_LEARNING_REPORT=/tmp/l.jsonl make test; python benchmarks/models_learning.py --render /tmp/l.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run() -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "learning.jsonl"
        tests = sorted(str(p) for p in (ROOT / "tests").glob("test_model_*.py")) + [str(ROOT / "tests" / "test_recipe_noah.py")]
        env = {**os.environ, "IQARENA_LEARNING_REPORT": str(report), "OMP_NUM_THREADS": "1"}
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "learn", *tests],
                       cwd=ROOT, env=env, check=False)
        return [json.loads(line) for line in report.read_text().splitlines()] if report.exists() else []


def _read(path: Path) -> list[dict]:
    """A --json file, or the JSON lines a test run wrote with IQARENA_LEARNING_REPORT set (the last run of a model
    wins)."""
    text = path.read_text()
    recs = json.loads(text) if text.lstrip().startswith("[") else [json.loads(ln) for ln in text.splitlines() if ln]
    return list({r["model"]: r for r in recs}.values())


def render(recs: list[dict]) -> str:
    lines = ["| model | small setting (options) | epochs | val SRCC untrained | val SRCC trained | gain | s / epoch |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in sorted(recs, key=lambda r: r["model"]):
        opts = ", ".join(f"{k}={v}" for k, v in r["options"].items())
        lines.append(f"| {r['model']} | {opts} | {r['epochs']} | {r['before']:.3f} | {r['after']:.3f} | "
                     f"{r['after'] - r['before']:+.3f} | {r['seconds_per_epoch']:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path)
    ap.add_argument("--render", type=Path, help="only render an earlier --json file (or a test run's JSON lines)")
    a = ap.parse_args()
    recs = _read(a.render) if a.render else run()
    print(render(recs))
    if a.json and not a.render:
        a.json.write_text(json.dumps(recs, indent=1))


if __name__ == "__main__":
    main()
