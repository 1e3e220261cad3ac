"""The book's data sets, each behind one function, and :func:`load_dataset` to pick one by name.

| name            | classes (train/val/test)  | per class | image     | source                          |
|-----------------|---------------------------|-----------|-----------|---------------------------------|
| ``omniglot``     | 4112/688/1692 (Vinyals; ``scheme="lake"``, ``"characters"``: see ``omniglot.py``) | 20 | 28x28x1 | Lake et al. 2015 |
| ``mini-imagenet``| 64/16/20                  | 600       | 84x84x3   | Vinyals et al. 2016, Ravi split |
| ``cifar-fs``     | 64/16/20 (``scheme="fc100"``: 60/20/20) | 600 | 32x32x3 | Bertinetto et al. 2019; Oreshkin et al. 2018 |
| ``huffpost``     | 20/5/16                   | 900       | 32 tokens | Bao et al. 2020 (headlines)     |
| ``reuters``      | 15/5/11                   | 20        | 256 tokens| Bao et al. 2020 (Reuters-21578) |
| ``fewrel``       | 6/5/5 of FewRel's 16 val relations (``scheme="6-10"``: 6/6/10, validation on held-out sentences) | 700 | 40 tokens x 3 | Han et al. 2018 |

The text sets (``common.data.text``) hold token ids instead of pixels, numbered by a vocabulary of
the meta-training classes only.

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
    "huffpost": ("common.data.text_fsl", "load_huffpost"),
    "reuters": ("common.data.text_fsl", "load_reuters"),
    "fewrel": ("common.data.fewrel", "load_fewrel"),
}
SPLITS = ("train", "val", "test", "trainval")


def load_dataset(name: str, split: str = "train", data_dir=None, **options) -> FewShotDataset:
    """Load split ``split`` of data set ``name`` (see the table above); options go to its loader."""
    if name not in LOADERS:
        raise ConfigError(f"unknown data set {name!r}; choose one of: {', '.join(LOADERS)}")
    module, function = LOADERS[name]
    return getattr(importlib.import_module(module), function)(split, data_dir, **options)


__all__ = ["FewShotDataset", "LOADERS", "load_dataset"]
