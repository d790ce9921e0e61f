"""`iqarena weights list|fetch|add`: the published parameter files metrics need."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from .. import weights as w


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="Published parameter files: list, download, import.", no_args_is_help=True)
    app.add_typer(sub, name="weights")

    @sub.command("list")
    def list_cmd() -> None:
        """Every catalogued file: who needs it, whether it is here, its size, check and licence."""
        table = Table(show_header=True, header_style="bold", title=f"cache: {w.cache_dir()}")
        for col in ("name", "file", "used by", "status", "size", "check", "licence"):
            table.add_column(col)
        for s in w.status():
            e = s.entry
            table.add_row(e.name, e.filename, ", ".join(e.used_by) or "-", s.where, _size(e.size),
                          e.check, e.licence)
        Console(width=200).print(table)

    @sub.command("fetch")
    def fetch_cmd(name: str = typer.Argument(..., help="catalogue name, e.g. alexnet"),
                  quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar")) -> None:
        """Download a file into the cache folder and check its hash."""
        path = w.fetch(name, progress=not quiet)
        typer.echo(f"{name}: {path} ({w.entry(name).check} checked)")

    @sub.command("add")
    def add_cmd(name: str = typer.Argument(..., help="catalogue name, e.g. vgg16"),
                path: Path = typer.Argument(..., help="the file you have"),
                overwrite: bool = typer.Option(False, "--overwrite", "--force",
                                               help="replace a different file already in the cache")) -> None:
        """Import a file you already have (checked against the catalogue) into the cache folder."""
        dest = w.add(name, path, overwrite=overwrite)
        typer.echo(f"{name}: {dest} ({w.entry(name).check} checked)")
