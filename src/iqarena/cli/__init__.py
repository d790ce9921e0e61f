"""The `iqarena` command. Each module in this package adds its subcommands with ``register(app)``."""

from __future__ import annotations

import importlib
import pkgutil

import typer

from ..errors import IQAError

app = typer.Typer(help="iqarena: perceptual image quality assessment.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)

for _mod in pkgutil.iter_modules(__path__):
    if not _mod.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod.name}").register(app)


def main() -> None:
    try:
        app()
    except IQAError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
