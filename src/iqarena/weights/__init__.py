"""Published parameter files: the catalogue, the cache folder, hash checks, download and import.

>>> from iqarena import weights
>>> weights.is_present("alexnet")            # on this machine with its published size?
>>> weights.path_for("alexnet")              # hash-checked path, or IQAError saying how to install it
>>> sd = weights.load_state_dict("alexnet")  # tensors, keys as published

See catalogue.py for the entries and store.py for where files are looked for.
"""

from .catalogue import CATALOGUE, WeightFile, register_weight_file
from .store import (ENV_HOME, add, cache_dir, check_file, digest, entry, fetch, home, is_present, load_state_dict,
                    locate, missing_message, path_for, read_chainer_hdf5, status, torch_hub_dir)

__all__ = ["CATALOGUE", "ENV_HOME", "WeightFile", "add", "cache_dir", "check_file", "digest", "entry", "fetch",
           "home", "is_present", "load_state_dict", "locate", "missing_message", "path_for", "read_chainer_hdf5", "register_weight_file",
           "status", "torch_hub_dir"]
