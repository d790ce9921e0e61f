"""The errors iqarena raises on purpose. Every message names the problem and the fix.

``IQAError`` is the base. ``InputError`` is bad input from the caller (a file, a label, an option):
a server answers it with 4xx. ``ResourceError`` is a missing or damaged installed resource (a
parameter file): the caller cannot fix the request, the installation must change. ``InternalError``
is a fault of iqarena itself: a server answers both of the latter with 5xx.

Messages are neutral about the front end: where a fix is an API option, ``option`` names it (for
example ``"overwrite"``) and the command line adds its own flag (``cli.OPTION_FLAGS``).
"""

from __future__ import annotations


class IQAError(Exception):
    """Base of every error iqarena raises on purpose; ``user_fault`` says whose fix it is."""

    user_fault = True

    def __init__(self, message: str, *, option: str | None = None):
        super().__init__(message)
        self.option = option


class InputError(IQAError, ValueError):
    """Bad input: an unreadable or mismatched image, a malformed label or submission, an unknown option."""


class ResourceError(IQAError):
    """An installed resource (a published parameter file) is missing or damaged."""

    user_fault = False


class InternalError(IQAError, RuntimeError):
    """A fault of iqarena itself (a broken invariant), never the caller's."""

    user_fault = False


class DegenerateInputWarning(UserWarning):
    """A score is NaN or infinite because the input is degenerate for that metric (a flat image, identical
    images ...), as in the original code. Issued once per call by every registered metric; the message
    names the metric and the cause (docs/robustness.md lists each metric's cases)."""
