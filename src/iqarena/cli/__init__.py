"""The `iqarena` command. Each module in this package adds its subcommands with ``register(app)``."""

from __future__ import annotations

import importlib
import pkgutil
import warnings

import typer

from ..errors import DegenerateInputWarning, IQAError

app = typer.Typer(help="iqarena: perceptual image quality assessment.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)

for _mod in pkgutil.iter_modules(__path__):
    if not _mod.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod.name}").register(app)


#: the command-line flag of each API option an error can name (``IQAError.option``)
OPTION_FLAGS = {"overwrite": "--overwrite", "root": "--root", "labels": "--labels", "dist": "--dist", "ref": "--ref",
                "pairs": "--pairs", "output": "--output", "metrics": "-m/--metric or --predictions",
                "device": "--device"}


def error_text(exc: IQAError) -> str:
    """An error's message, with the command-line flag of the option it names."""
    flag = OPTION_FLAGS.get(exc.option or "")
    return f"{exc} (command line: {flag})" if flag else str(exc)


def main() -> None:
    # the commands mark NaN/inf scores themselves (score: a footnote per cause; evaluate: the rows it drops)
    warnings.simplefilter("ignore", DegenerateInputWarning)
    try:
        app()
    except IQAError as exc:
        typer.echo(f"error: {error_text(exc)}", err=True)
        raise SystemExit(2 if exc.user_fault else 3) from None
