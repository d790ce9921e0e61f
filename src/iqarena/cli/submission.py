"""`iqarena submission pack | check`: make a challenge submission zip, and check one as the server does."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def _summary(sub, expected: Optional[tuple[str, ...]]) -> str:
    """An OK line with the count (and what was matched), then the readme fields as written."""
    matched = f", one for each of the {len(expected)} expected names" if expected is not None else ""
    lines = [f"OK {sub.source}: {len(sub)} scores{matched}"]
    lines += [f"  {key} : {value}" for key, value in sub.readme.fields.items()]
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    submission = typer.Typer(help="Challenge submissions: pack output.txt + readme.txt into a zip, check a zip.",
                             no_args_is_help=True)
    app.add_typer(submission, name="submission")

    @submission.command("pack")
    def pack_cmd(
        predictions: Path = typer.Argument(..., help="scores: 'name,score' lines, a CSV with a header, or a zip"),
        runtime: float = typer.Option(..., "--runtime", min=0, help="runtime per image in seconds"),
        gpu: bool = typer.Option(False, "--gpu/--cpu", help="the device the runtime was measured on"),
        extra_data: int = typer.Option(0, "--extra-data", min=0, max=1,
                                       help="1 if trained with data beyond the challenge's, else 0"),
        description: str = typer.Option("", "--description", help="the method in one line"),
        output: Path = typer.Option(..., "--output", "-o", help="zip to write"),
        overwrite: bool = typer.Option(False, "--overwrite", help="allow replacing an existing --output file"),
    ) -> None:
        """Write a submission zip: output.txt (one 'name,score' line per image) and readme.txt (NTIRE facts)."""
        from ..submission import Readme, check_submission, pack_submission

        out = pack_submission(predictions, Readme(runtime, gpu, bool(extra_data), description), output,
                              overwrite=overwrite)
        typer.echo(f"wrote {out}", err=True)
        typer.echo(_summary(check_submission(out), None))

    @submission.command("check")
    def check_cmd(
        path: Path = typer.Argument(..., help="the submission zip"),
        names: Optional[Path] = typer.Option(None, "--names", help="the expected images: one name per line, or "
                                                                   "a label file ('name,score' or CSV)"),
    ) -> None:
        """Check a submission zip as the challenge server does.

        The layout, the caps, the readme and the scores; with --names also the match: every expected
        image scored exactly once, and nothing else.
        """
        from ..submission import check_submission, read_names

        expected = read_names(names) if names is not None else None
        typer.echo(_summary(check_submission(path, expected), expected))
