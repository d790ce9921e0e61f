"""A network whose ``features`` Sequential is cut into stages at fixed indices."""

from __future__ import annotations

import torch
from torch import nn


class Staged(nn.Module):
    stage_ends: tuple[int, ...] = ()
    features: nn.Sequential

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Outputs of ``features`` at each index in ``stage_ends`` (exclusive ends), in order."""
        out, start = [], 0
        for end in self.stage_ends:
            x = self.features[start:end](x)
            out.append(x)
            start = end
        return out
