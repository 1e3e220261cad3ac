"""Class schemes: which classes a run learns from, which it watches, and how it is tested.

Omniglot is used in three ways, and every image script takes the choice as ``--scheme``:

* ``vinyals`` (the default, and the papers' protocol for Matching Networks, ProtoNet, MAML, ...):
  characters of all 50 alphabets split 1,028 / 172 / 423, every rotation a class of its own, test
  episodes of N classes from any alphabets.
* ``lake`` (Lake et al. 2015, the challenge Omniglot was made for): train on the background
  alphabets only (25 of them; 5 more held out whole for validation), test on the 20 evaluation
  alphabets, with episodes whose N classes all come from one alphabet and whose support and query
  drawings come from different drawers (``common.alphabet_episodes``). Rotations as extra classes
  are chosen per split with ``--rotations`` (default: the training split only), and
  ``--train-within-alphabet`` draws the training episodes within one alphabet too, so that the
  training task is the test's.
* ``characters`` (Finn et al. 2017 after Santoro et al. 2016, and their and Nichol et al.'s code):
  1,200 characters for training "irrespective of alphabet" (1,100 of them train, 100 validate), the
  other 423 for testing, cut from one seeded shuffle of all 1,623, every rotation a class of its
  own. Every test character's alphabet then has characters in training: an easier test than the
  Vinyals split's, 12 of whose 13 test alphabets have none.

A Lake-scheme run is named ``<dataset>-lake`` in its results and run folder (``omniglot-lake``), a
characters-scheme run ``omniglot-characters``, so that their rows never share a cell of the results
table with the Vinyals split's; a choice of rotations other than the default, and within-alphabet
training, are labelled variants (``[rotations none]``, ``[train_within_alphabet]``:
``common.results.DEVIATIONS``).

Under either scheme, ``--augment affine`` distorts every training drawing as Koch et al. did
(``common.augment``); evaluation episodes stay as they are. It is a labelled variant too
(``[augment affine]``). ``--image-size`` resizes Omniglot's 105x105 drawings to another side than
the papers' 28 (Koch et al. used them whole): a run at 56 pixels is named ``omniglot-56px`` or
``omniglot-lake-56px``, a data set of its own in the results, since every number it gives is on
other inputs.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from common.augment import AUGMENTATIONS
from common.errors import ConfigError
from common.options import Number, sized_name

SCHEMES = ("vinyals", "lake", "characters")
ROTATION_SPLITS = ("train", "val", "test")
DEFAULT_ROTATIONS = ("train",)  # Lake scheme: the training characters turned are more classes; tests are upright
PAPERS_IMAGE_SIZE = 28  # Omniglot's side in Vinyals et al. and after (the drawings are 105x105)


def rotation_splits(text: str) -> tuple[str, ...]:
    """``--rotations``: ``none``, or splits joined by commas (``train``, ``train,val``)."""
    if text == "none":
        return ()
    splits = tuple(text.split(","))
    if not splits or any(split not in ROTATION_SPLITS for split in splits) or len(set(splits)) != len(splits):
        raise argparse.ArgumentTypeError(f"must be none or splits among {', '.join(ROTATION_SPLITS)} joined by "
                                         f"commas (e.g. train), got {text!r}")
    return tuple(split for split in ROTATION_SPLITS if split in splits)  # one spelling per choice


def add_scheme_arguments(parser: argparse.ArgumentParser) -> None:
    """``--scheme`` and ``--rotations``, for every script that trains on images."""
    parser.add_argument("--scheme", choices=SCHEMES, default="vinyals",
                        help="Omniglot's classes: 'vinyals' (characters of all alphabets split 1028/172/423, "
                             "rotations as classes) or 'lake' (train on background alphabets, validate on 5 of them "
                             "held out, test within one evaluation alphabet at a time, support and query by "
                             "different drawers; results named omniglot-lake) or 'characters' (1,200 characters of "
                             "any alphabets for training, 423 for testing, as Finn et al.'s code; results named "
                             "omniglot-characters) (default: %(default)s)")
    parser.add_argument("--rotations", type=rotation_splits, default=None,
                        help="with --scheme lake: the splits whose characters also count rotated by 90, 180 and 270 "
                             "degrees as classes of their own, e.g. 'train', 'train,val' or 'none' (default: train)")
    parser.add_argument("--train-within-alphabet", action="store_true",
                        help="with --scheme lake: draw every training episode's classes from one alphabet too, support "
                             "and query by different drawers, as in the test (labelled [train_within_alphabet])")
    parser.add_argument("--augment", choices=AUGMENTATIONS, default=None,
                        help="with --dataset omniglot: 'affine' distorts every training drawing by a small random "
                             "rotation, shear, scale and translation (Koch et al. 2015), the same in every framework; "
                             "evaluation episodes are left as they are (labelled [augment affine]) (default: none)")
    parser.add_argument("--image-size", type=Number(int, 8, 105), default=None,
                        help="with --dataset omniglot: the side the 105x105 drawings are resized to; other than 28 "
                             "the run is named omniglot-<side>px (omniglot-lake-<side>px) (default: 28)")


@dataclass(frozen=True)
class Scheme:
    """A class scheme, as a script uses it: the splits to load, the evaluation episodes, the labels."""

    name: str = "vinyals"
    rotations: tuple[str, ...] = DEFAULT_ROTATIONS  # Lake scheme only: the splits with rotated classes
    train_within_alphabet: bool = False  # Lake scheme only: training episodes within one alphabet too
    augment: str | None = None  # either scheme: "affine" distorts the training drawings (common.augment)
    image_size: int | None = None  # either scheme: the side of Omniglot's images when not the papers' 28

    @classmethod
    def from_args(cls, args) -> "Scheme":
        """The scheme a script's options ask for; a combination that cannot work is one clear line."""
        augment = getattr(args, "augment", None)
        if augment is not None and args.dataset != "omniglot":
            raise ConfigError(f"--augment {augment} distorts Omniglot's drawings (Koch et al.); it must go with "
                              f"--dataset omniglot, got --dataset {args.dataset}")
        image_size = getattr(args, "image_size", None)
        if image_size is not None and args.dataset != "omniglot":
            raise ConfigError(f"--image-size resizes Omniglot's drawings; it must go with --dataset omniglot, got "
                              f"--dataset {args.dataset} (drop --image-size)")
        image_size = None if image_size == PAPERS_IMAGE_SIZE else image_size
        if args.scheme != "lake":
            if args.rotations is not None:
                raise ConfigError(f"--rotations applies to --scheme lake; the {args.scheme} scheme fixes the "
                                  f"rotations of every split (drop --rotations {','.join(args.rotations) or 'none'})")
            if args.train_within_alphabet:
                raise ConfigError("--train-within-alphabet applies to --scheme lake, whose tests are within one "
                                  "alphabet; add --scheme lake, or drop it")
        if args.scheme != "vinyals":
            if args.dataset != "omniglot":
                raise ConfigError(f"--scheme {args.scheme} must go with --dataset omniglot (it splits Omniglot's "
                                  f"{'alphabets' if args.scheme == 'lake' else 'characters'}), got --dataset {args.dataset}")
            if getattr(args, "pipeline_check", False):
                raise ConfigError(f"--scheme {args.scheme} has its own train, val and test characters; drop "
                                  f"--pipeline-check")
        if args.scheme == "vinyals":
            return cls(augment=augment, image_size=image_size)
        if args.scheme == "characters":
            return cls("characters", (), augment=augment, image_size=image_size)
        return cls("lake", DEFAULT_ROTATIONS if args.rotations is None else args.rotations, args.train_within_alphabet,
                   augment, image_size)

    def dataset_label(self, dataset: str) -> str:
        """The data set's name in results and run folders: ``omniglot``, ``omniglot-lake`` or
        ``omniglot-characters``, and ``-<side>px`` after it for images of another side than 28."""
        label = dataset if self.name == "vinyals" else f"{dataset}-{self.name}"
        return sized_name(label, self.image_size)

    def dataset_options(self, split: str) -> dict:
        """The loader's options for one split: none for the Vinyals split at 28 pixels (the loaders'
        default), the scheme and the split's rotations for Lake's (``trainval`` has rotations when
        ``train`` has), the images' side when it is another."""
        size = {} if self.image_size is None else {"image_size": self.image_size}
        if self.name == "vinyals":
            return size
        if self.name == "characters":
            return {"scheme": self.name, **size}
        return {"scheme": self.name, "rotations": ("train" if split == "trainval" else split) in self.rotations, **size}

    def load(self, dataset: str, split: str, data_dir=None):
        """One split of ``dataset`` under this scheme."""
        from common.data import load_dataset

        return load_dataset(dataset, split, data_dir, **self.dataset_options(split))

    def training_sampler(self, dataset, way: int, shot: int, query: int, seed: int):
        """The training episodes: any classes, or within one alphabet with ``--train-within-alphabet``;
        with ``--augment affine``, their drawings distorted (``common.augment``)."""
        if self.train_within_alphabet:
            from common.alphabet_episodes import WithinAlphabetSampler
            sampler = WithinAlphabetSampler(dataset, way, shot, query, seed=seed)
        else:
            from common.episodes import EpisodeSampler
            sampler = EpisodeSampler(dataset, way, shot, query, seed=seed)
        if self.augment == "affine":
            from common.augment import AffineDistortion
            return AffineDistortion(sampler)
        return sampler

    def evaluation_episodes(self, dataset, way: int, shot: int, query: int, count: int):
        """The fixed evaluation episodes of a split: any classes (Vinyals, characters), or within one
        alphabet (Lake)."""
        if self.name != "lake":
            from common.episodes import evaluation_episodes
            return evaluation_episodes(dataset, way, shot, query, count=count)
        from common.alphabet_episodes import within_alphabet_episodes
        return within_alphabet_episodes(dataset, way, shot, query, count=count)

    def options(self) -> dict:
        """What a run records of its scheme in its results (nothing for the Vinyals split, as before),
        and its augmentation when there is one. (The images' side is in the data set's name.)"""
        augment = {"augment": self.augment} if self.augment else {}
        if self.name == "vinyals":
            return augment
        if self.name == "characters":
            return {"scheme": self.name, **augment}
        return {"scheme": self.name, "rotations": ",".join(self.rotations) or "none", "evaluation": "within-alphabet",
                **({"train_within_alphabet": True} if self.train_within_alphabet else {}), **augment}
