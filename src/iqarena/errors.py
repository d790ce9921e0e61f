"""The one exception type iqarena raises for bad input; its message names the problem and the fix."""


class IQAError(ValueError):
    """Bad input or missing resources. The message says what is wrong and how to fix it."""
