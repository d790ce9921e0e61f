"""IFC: information fidelity criterion.

Sheikh, Bovik, de Veciana, "An information fidelity criterion for image quality assessment using
natural scene statistics", IEEE TIP 14(12), 2005. Original code (LIVE): ifcvec_release.zip
(ifcvec.m, distsub_est_M.m, refparams_vecgsm.m, ind2wtree.m), http://live.ece.utexas.edu/research/Quality/

Follows ifcvec.m, which shares its pyramid and estimates with vifvec.m (see vif.py): sp5 steerable
pyramid of 4 levels with 'reflect1' edges, orientations 1 and 4 of every level, 3x3 blocks, the
distortion channel (g, vv) and the reference GSM (s, eigenvalues lambda); IFC is the sum over
subbands, blocks and eigenvalues of log2(1 + g^2 s lambda / (vv + 1e-10)), divided by the number of
image pixels as in the release ("normalize to size of the image"). ``normalize=False`` returns the
plain sum in bits. Unbounded above; identical images give the largest values
(vv = 1e-15, so about 33 bits per eigenvalue). Colour input: MATLAB rgb2gray rounded to 8 bits,
data range 255. No official values are available here; the shared code path with ``vif`` is the one
calibrated to the official VIF values.
"""

from __future__ import annotations

import torch

from .registry import register
from .vif import _grey255, gsm_subband_terms, information


@register("ifc", kind="fr", higher_better=True, score_range=(0, float("inf")),
          paper="Sheikh, Bovik, de Veciana, An information fidelity criterion for image quality assessment "
                "using natural scene statistics, TIP 2005",
          code="http://live.ece.utexas.edu/research/Quality/ifcvec_release.zip (ifcvec.m)",
          colour="MATLAB rgb2gray rounded to 8 bits; data range 255",
          min_size=lambda o: 9 * 2 ** (o["levels"] - 1),
          size_note="a 4-level sp5 steerable pyramid (levels option): 9-tap filters at the coarsest level",
          nonfinite={"nan": "a flat pyramid band (e.g. a constant reference): its GSM covariance is singular; "
                            "MATLAB's inv gives Inf there and ifcvec.m NaN"})
def ifc(dist: torch.Tensor, ref: torch.Tensor, *, colour: str = "gray", quantize: bool = True, block: int = 3,
        levels: int = 4, orientations: tuple[int, ...] = (0, 3), normalize: bool = True) -> torch.Tensor:
    """Information fidelity criterion (ifcvec.m), in bits per image pixel by default."""
    x, y = _grey255(ref, colour, quantize), _grey255(dist, colour, quantize)
    total = 0
    for g, vv, s, lam in gsm_subband_terms(x, y, levels, tuple(orientations), block):
        total = total + information(g * g * s / (vv + 1e-10), lam)
    if normalize:
        total = total / (ref.shape[-2] * ref.shape[-1])
    return total.to(dist.dtype)
