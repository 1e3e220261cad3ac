"""The book's data sets, each behind one function, and :func:`load_dataset` to pick one by name.

| name            | classes (train/val/test)  | per class | image     | source                          |
|-----------------|---------------------------|-----------|-----------|---------------------------------|
| ``omniglot``     | 4112/688/1692 (Vinyals)   | 20        | 28x28x1   | Lake et al. 2015                |
| ``mini-imagenet``| 64/16/20                  | 600       | 84x84x3   | Vinyals et al. 2016, Ravi split |
| ``cifar-fs``     | 64/16/20 (``scheme="fc100"``: 60/20/20) | 600 | 32x32x3 | Bertinetto et al. 2019; Oreshkin et al. 2018 |

Sinusoid regression tasks (Finn et al. 2017) are generated, not loaded: see ``common.data.sinusoid``.
"""

from __future__ import annotations

import importlib

from common.data.base import FewShotDataset
from common.errors import ConfigError

# name -> (module, loader function); imported on demand so that loading Omniglot never imports
# the code (or the dependencies) of the other data sets.
LOADERS = {
    "omniglot": ("common.data.omniglot", "load_omniglot"),
    "mini-imagenet": ("common.data.mini_imagenet", "load_mini_imagenet"),
    "cifar-fs": ("common.data.cifar_fs", "load_cifar_fs"),
}
SPLITS = ("train", "val", "test", "trainval")


def load_dataset(name: str, split: str = "train", data_dir=None, **options) -> FewShotDataset:
    """Load split ``split`` of data set ``name`` (see the table above); options go to its loader."""
    if name not in LOADERS:
        raise ConfigError(f"unknown data set {name!r}; choose one of: {', '.join(LOADERS)}")
    module, function = LOADERS[name]
    return getattr(importlib.import_module(module), function)(split, data_dir, **options)


__all__ = ["FewShotDataset", "LOADERS", "load_dataset"]
