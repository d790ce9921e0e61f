"""``python -m iqarena.cli``: the same as the ``iqarena`` command (used by torchrun for distributed training)."""

from . import main

main()
