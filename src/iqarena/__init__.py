"""iqarena: perceptual image quality assessment, calibrated to the original code.

>>> import iqarena
>>> iqarena.list_metrics()            # names of every registered metric
>>> m = iqarena.create_metric("ssim")  # a torch module
>>> m(dist, ref)                       # NCHW float tensors in [0, 1] -> scores of shape (N,)
"""

from .errors import InputError, InternalError, IQAError, ResourceError
from .io import read_image
from .metrics import create_metric, get_info, list_metrics

__all__ = ["IQAError", "InputError", "InternalError", "ResourceError", "create_metric", "get_info", "list_metrics",
           "read_image"]
__version__ = "0.1.0"
