"""Memory-augmented neural networks (Santoro et al., ICML 2016): the online Omniglot task, and the
script that trains and tests a MANN or its plain-LSTM baseline in any framework.

    python -m chapters.model_based.mann --framework torch --episodes 20000
    python -m chapters.model_based.mann --framework tf --model lstm --episodes 20000

**The task** (Santoro et al., Section 4.1). An episode is a sequence of T = way x presentations
steps: ``--way`` 5 classes drawn at random, ``--presentations`` 10 drawings of each, shuffled. At
step t the network sees the image x_t together with the label of the *previous* step, y_{t-1}
(one-hot; zeros at t = 1), and must output y_t. The first time a class appears it can only guess
(among the labels not used yet, at best); from the second presentation on it can have bound the
label to the class. Accuracy is therefore reported per presentation: at the 1st, 2nd, ..., 10th
time a class is shown (their Table 1).

**As an Episode.** The book's loader, sampler adapters and training loop speak
``common.episodes.Episode``; an online sequence is one too: ``support_x``, ``support_y`` are the
images and labels in presentation order (what the network reads, each label one step late), and
``query_y`` repeats ``support_y``, because every step is also scored. ``query_x`` is empty: the
queries are the support images themselves. A meta-batch (``--batch`` 16 sequences) stacks them.

**The paper's settings** (our reading of Section 4 and its appendix; where the paper is silent the
choice is ours and named so):

* data: Omniglot, 1,200 characters for training and the other 423 for testing; the Vinyals et al.
  split has these counts (``trainval`` = 1,028 + 172, ``test`` = 423), so we use it, with each
  90-degree rotation of a character a class of its own ("new classes through 90, 180 and 270
  degree rotations"). The paper does not say how it chose the characters; Finn et al.'s
  "irrespective of alphabet" is ``scheme="characters"``, whose test alphabets are seen in
  training, the Vinyals split's not. Images downscaled to 20x20. Training images are randomly translated and
  rotated; the amounts are not given: ours are up to +-2 pixels and +-10 degrees (``--shift``,
  ``--angle``). Validation (the curve only; the last model is tested) uses fixed episodes of the
  test classes drawn with another seed than the test episodes: the paper has no validation split.
* network: an LSTM controller of 200 units, a memory of 128 rows of 40, 4 read heads, usage decay
  gamma = 0.95; RMSProp with learning rate 1e-4, decay 0.95, momentum 0.9; 16 episodes per batch.
* budget: the paper trains for 100,000 episodes (Figure 2) without saying whether an episode
  there is one sequence or a batch of 16; ``--episodes`` counts batches (updates).
* the write: Section 3 adds the key k_t itself to the memory rows it writes. ``--add-vector``
  writes a separate add vector a_t = tanh(W_a h_t) instead, as the public reimplementations do
  (snowkylin/ntm, Leputa/MANN, tristandeleu's), so that one linear map of h_t is not both the
  query for the current image and the content stored for it: a deviation, whose runs have rows
  ``mann [add_vector]`` of their own.

The memory itself (the equations of Section 3 of the paper) is in ``mann_torch.py`` / ``mann_tf.py`` / ``mann_keras.py``.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass

import numpy as np

from common.cli import Config
from common.episodes import EVALUATION_SEED, Episode, EpisodeSampler, EpisodeSource, FixedEpisodes, MetaBatches
from common.errors import ConfigError
from common.evaluation import mean_ci95

PAPER = {"way": 5, "presentations": 10, "image_size": 20, "batch": 16, "controller": 200,
         "memory_rows": 128, "memory_width": 40, "read_heads": 4, "gamma": 0.95,
         "lr": 1e-4, "rms_decay": 0.95, "momentum": 0.9}
REPORTED_PRESENTATIONS = (1, 2, 3, 4, 5, 10)  # the columns of Santoro et al.'s Table 1
VALIDATION_SEED = EVALUATION_SEED + 1  # validation episodes: test classes, other episodes than the test's


# ------------------------------------------------------------------------------- the sequences

def augment(images: np.ndarray, rng: np.random.Generator, shift: float, angle: float) -> np.ndarray:
    """Each image (N, H, W, 1) rotated by a random angle in +-``angle`` degrees about its centre and
    translated by up to +-``shift`` pixels, sampled bilinearly, zeros outside (the background)."""
    n, height, width = images.shape[:3]
    theta = np.deg2rad(rng.uniform(-angle, angle, n))
    offset = rng.uniform(-shift, shift, (n, 2))
    cy, cx = (height - 1) / 2, (width - 1) / 2
    yy, xx = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    # Inverse mapping: output pixel (y, x) reads the source at the rotated-back, shifted-back point.
    dy = yy[None] - cy - offset[:, 0, None, None]
    dx = xx[None] - cx - offset[:, 1, None, None]
    cos, sin = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    sy, sx = cos * dy - sin * dx + cy, sin * dy + cos * dx + cx
    y0, x0 = np.floor(sy).astype(int), np.floor(sx).astype(int)
    fy, fx = sy - y0, sx - x0
    source = images[..., 0]
    rows = np.arange(n)[:, None, None]

    def pixel(y, x):
        inside = (y >= 0) & (y < height) & (x >= 0) & (x < width)
        return np.where(inside, source[rows, np.clip(y, 0, height - 1), np.clip(x, 0, width - 1)], 0.0)

    out = ((1 - fy) * (1 - fx) * pixel(y0, x0) + (1 - fy) * fx * pixel(y0, x0 + 1)
           + fy * (1 - fx) * pixel(y0 + 1, x0) + fy * fx * pixel(y0 + 1, x0 + 1))
    return out[..., None].astype(images.dtype)


class SequenceSampler(EpisodeSource):
    """Online episodes: ``way`` classes x ``presentations`` drawings, shuffled into one sequence.

    Episode ``i`` of seed ``s`` is a pure function of (s, i), as for every sampler of the book:
    its classes and drawings are :class:`~common.episodes.EpisodeSampler`'s episode i, its order
    and augmentation come from generators seeded with (s, i, 1) and (s, i, 2).
    """

    def __init__(self, dataset, way: int = 5, presentations: int = 10, seed: int = 0,
                 shift: float = 0.0, angle: float = 0.0):
        self.episodes_of = EpisodeSampler(dataset, way, presentations, 0, seed)
        self.dataset, self.way, self.presentations, self.seed = dataset, way, presentations, int(seed)
        self.shift, self.angle = float(shift), float(angle)

    @property
    def length(self) -> int:
        return self.way * self.presentations

    def episode(self, index: int) -> Episode:
        drawn = self.episodes_of.episode(index)  # class by class: all drawings of label 0, then 1, ...
        order = np.random.default_rng([self.seed, index, 1]).permutation(self.length)
        images, labels = drawn.support_x[order], drawn.support_y[order]
        if self.shift or self.angle:
            images = augment(images, np.random.default_rng([self.seed, index, 2]), self.shift, self.angle)
        return Episode(images, labels, images[:0], labels.copy())

    def __repr__(self) -> str:
        return (f"SequenceSampler({self.dataset.name}/{self.dataset.split}, {self.way} classes x "
                f"{self.presentations} presentations, seed={self.seed})")


def check_sequence(labels, way: int) -> None:
    """A clear error for a sequence the network cannot read: no steps, or labels outside
    0..way-1 (the one-hot input and the output layer have ``way`` entries)."""
    labels = np.asarray(labels)
    if labels.shape[-1] == 0:
        raise ConfigError("the sequence has no steps: an online episode needs at least one image "
                          "to predict (way x presentations >= 1)")
    if labels.min() < 0 or labels.max() >= way:
        raise ConfigError(f"the sequence has labels {int(labels.min())}..{int(labels.max())}, but the "
                          f"network was built for {way} classes (labels 0..{way - 1}); build it with "
                          f"way={int(labels.max()) + 1}, or relabel the episode")


def previous_labels(labels: np.ndarray, way: int) -> np.ndarray:
    """The network's label input: at step t the one-hot y_{t-1}, zeros at t = 1. (..., T) -> (..., T, way)."""
    one_hot = np.eye(way, dtype=np.float32)[labels]
    shifted = np.zeros_like(one_hot)
    shifted[..., 1:, :] = one_hot[..., :-1, :]
    return shifted


# ----------------------------------------------------------------------- the memory

def write_weights(previous_read, least, gate):
    """Write weights (LRUA, Section 3 of Santoro et al.): w^w = σ(α) w^r_{t-1} + (1 - σ(α)) w^lu_{t-1};
    (B, R, N), (B, N), (B, R) -> (B, R, N). Broadcasting arithmetic alone, the same for a PyTorch,
    TensorFlow or Keras tensor (and a NumPy array): written once, for the ``step`` of every framework."""
    return gate[..., None] * previous_read + (1 - gate[..., None]) * least[:, None, :]


# ----------------------------------------------------------------------- accuracy per presentation

def presentation_numbers(labels: np.ndarray) -> np.ndarray:
    """For each step, how many times its class has been shown so far, itself included (1, 2, ...)."""
    labels = np.asarray(labels)
    same = labels[:, None] == labels[None, :]
    return np.tril(same).sum(axis=1)


def presentation_accuracy(predict, episodes, presentations=REPORTED_PRESENTATIONS) -> dict:
    """Accuracy over all steps and at each presentation, mean and 95% CI over the episodes (percent).

    ``predict(episode)`` returns the predicted label of every step. Returns ``{"accuracy", "ci95",
    "episodes", "presentations": {"1": [mean, ci95], ...}}``.
    """
    per_episode, per_presentation = [], {k: [] for k in presentations}
    for episode in episodes:
        correct = np.asarray(predict(episode)) == episode.query_y
        number = presentation_numbers(episode.query_y)
        per_episode.append(correct.mean())
        for k in presentations:
            if (number == k).any():
                per_presentation[k].append(correct[number == k].mean())
    mean, ci = mean_ci95(per_episode)
    return {"accuracy": 100 * mean, "ci95": 100 * ci, "episodes": len(per_episode),
            "presentations": {str(k): [100 * v for v in mean_ci95(values)]
                              for k, values in per_presentation.items() if values}}


# -------------------------------------------------------------------------------- the script

MEMORY = ("memory_rows", "memory_width", "read_heads", "gamma")  # the settings of the MANN's memory alone


@dataclass
class MANNConfig(Config):
    """The settings of a MANN or its LSTM baseline, in one place: their defaults are the command
    line's (the paper's, above), :meth:`network` gives the network its keyword arguments, and
    :meth:`options` is what the results and the checkpoint record (the LSTM's: no memory)."""

    model: str = "mann"                        # "mann": LSTM controller + LRUA memory; "lstm": the controller alone
    way: int = PAPER["way"]                    # classes per episode: the label input's and the output's size
    image_size: int = PAPER["image_size"]      # side of the square images, pixels
    controller: int = PAPER["controller"]      # LSTM units
    memory_rows: int = PAPER["memory_rows"]    # rows of the memory ...
    memory_width: int = PAPER["memory_width"]  # ... and their width
    read_heads: int = PAPER["read_heads"]      # read heads
    gamma: float = PAPER["gamma"]              # γ, the usage decay
    batch: int = PAPER["batch"]                # episodes per update
    lr: float = PAPER["lr"]                    # RMSProp's learning rate
    shift: float = 2.0                         # random translation of training images, pixels (ours)
    angle: float = 10.0                        # random rotation of training images, degrees (ours)
    add_vector: bool = False                   # write a_t = tanh(W_a h_t), not the key k_t (a deviation)

    def network(self) -> dict:
        """The keyword arguments of ``MANN`` / ``LSTMBaseline`` in every framework."""
        keys = ("way", "image_size", "controller") + (MEMORY if self.model == "mann" else ())
        return {**{key: getattr(self, key) for key in keys}, **({"add_vector": True} if self.add_vector else {})}

    def options(self) -> dict:
        """The network's settings and the training's; the model is the run's algorithm, not an option.
        ``add_vector`` is recorded only when it is on: the paper's runs keep their options."""
        return {**self.network(), "batch": self.batch, "lr": self.lr, "shift": self.shift, "angle": self.angle}


def parse_args(argv=None):
    """The options, each checked by its rule (``common.options``) while parsing; their defaults are
    :class:`MANNConfig`'s."""
    from common.cli import FRAMEWORKS
    from common.devices import DEVICE_HELP
    from common.options import COUNT, POSITIVE, SEED, WAY, Number, Parser

    defaults = MANNConfig()
    parser = Parser(
        prog="python -m chapters.model_based.mann",
        description="Train a memory-augmented network (Santoro et al. 2016) or its LSTM baseline on "
                    "online Omniglot episodes, then test its accuracy per presentation.")
    parser.add_argument("--framework", choices=FRAMEWORKS, default="torch", help="the framework that computes")
    parser.add_argument("--model", choices=("mann", "lstm"), default=defaults.model,
                        help="mann: LSTM controller + LRUA memory; lstm: the controller alone (baseline)")
    parser.add_argument("--way", type=WAY, default=defaults.way, help="classes per episode")
    parser.add_argument("--presentations", type=COUNT, default=PAPER["presentations"],
                        help="drawings of each class per episode (sequence length way x presentations)")
    parser.add_argument("--episodes", type=COUNT, default=100_000, help="training batches (updates)")
    parser.add_argument("--batch", type=COUNT, default=defaults.batch, help="episodes per update")
    parser.add_argument("--controller", type=COUNT, default=defaults.controller, help="LSTM units")
    parser.add_argument("--memory-rows", type=COUNT, default=defaults.memory_rows, help="rows of the memory")
    parser.add_argument("--memory-width", type=COUNT, default=defaults.memory_width, help="width of a memory row")
    parser.add_argument("--read-heads", type=COUNT, default=defaults.read_heads, help="read heads")
    parser.add_argument("--gamma", type=Number(float, 0, 1), default=defaults.gamma, help="usage decay γ")
    parser.add_argument("--lr", type=POSITIVE, default=defaults.lr, help="RMSProp learning rate")
    parser.add_argument("--add-vector", action="store_true",
                        help="write a separate add vector a_t = tanh(W_a h_t) to memory, not the key k_t: the "
                             "public reimplementations' write (a deviation from Section 3)")
    parser.add_argument("--image-size", type=Number(int, 8, 105), default=defaults.image_size,
                        help="side of the square images, pixels")
    parser.add_argument("--shift", type=float, default=defaults.shift,
                        help="random translation of training images, pixels")
    parser.add_argument("--angle", type=float, default=defaults.angle, help="random rotation of training images, degrees")
    parser.add_argument("--eval-every", type=COUNT, default=500,
                        help="validate and checkpoint every N updates (--episodes must be a multiple)")
    parser.add_argument("--val-episodes", type=COUNT, default=100, help="fixed validation episodes")
    parser.add_argument("--test-episodes", type=COUNT, default=600, help="fixed test episodes")
    parser.add_argument("--seed", type=SEED, default=0, help="draws the training episodes and the initial weights")
    parser.add_argument("--data-dir", default=None, help="data root (default: $METALEARN_DATA, else ./data)")
    parser.add_argument("--out", default="runs", help="folder for checkpoints, curves and results")
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    parser.add_argument("--quiet", action="store_true", help="no progress bar; one line per validation")
    return parser.parse_args(argv)


def check_options(args) -> None:
    """Clear errors for settings that cannot work together, before any data is loaded or model built
    (each option's own rule is its type: ``common.options``)."""
    from common.options import check_multiple, check_out

    if args.add_vector and args.model != "mann":
        raise ConfigError("--add-vector is a MANN's write to its memory; the LSTM baseline has none: drop it")
    if args.read_heads > args.memory_rows:
        raise ConfigError(f"--read-heads {args.read_heads} needs as many least-used rows, but the memory "
                          f"has {args.memory_rows}; use --memory-rows {args.read_heads} or more")
    check_multiple("--episodes", args.episodes, "--eval-every", args.eval_every, "updates")
    check_out(args.out)


def build_learner(framework: str, model: str, settings: dict, seed: int, lr: float = PAPER["lr"],
                  dtype: str = "float32", device: str = "cpu"):
    """The ``SequenceLearner`` of ``framework`` around a fresh ``MANN`` or ``LSTMBaseline``."""
    module = importlib.import_module(f"chapters.model_based.mann_{framework}")
    network = module.build_network(model, settings, seed=seed, dtype=dtype)
    return module.SequenceLearner(network, lr=lr, device=device) if framework == "torch" else \
        module.SequenceLearner(network, lr=lr)


def main(argv=None) -> dict:
    from common.cli import require_framework
    from common.data import load_dataset
    from common.devices import use_device
    from common.results import write_result
    from common.training import Run, train

    args = parse_args(argv)
    require_framework(args.framework)
    check_options(args)
    config = MANNConfig.from_args(args)
    device = use_device(args.framework, args.device)
    options = {"image_size": config.image_size, "scheme": "vinyals"}
    train_set = load_dataset("omniglot", "trainval", args.data_dir, **options)  # the paper's 1,200 characters
    test_set = load_dataset("omniglot", "test", args.data_dir, **options)       # the other 423
    sampler = MetaBatches(SequenceSampler(train_set, config.way, args.presentations, args.seed,
                                          config.shift, config.angle), config.batch)
    val_episodes = FixedEpisodes(SequenceSampler(test_set, config.way, args.presentations, VALIDATION_SEED),
                                 args.val_episodes)
    test_episodes = FixedEpisodes(SequenceSampler(test_set, config.way, args.presentations, EVALUATION_SEED),
                                  args.test_episodes)
    # An online episode has no query set: each of its way x presentations steps is scored.
    run = Run(algorithm=config.model, framework=args.framework, dataset="omniglot", way=config.way,
              shot=args.presentations, query=0, test_way=config.way, test_shot=args.presentations, test_query=0,
              episodes=args.episodes, seed=args.seed, eval_every=min(args.eval_every, args.episodes),
              val_episodes=args.val_episodes, test_episodes=args.test_episodes, out=args.out,
              options=config.options(), device=device)
    learner = build_learner(args.framework, config.model, config.network(), args.seed, config.lr, device=device)
    result = train(run, learner, sampler, val_episodes, test_episodes, progress=not args.quiet)
    # The table of the paper is per presentation: score the same test episodes that way, and keep
    # it in the same results file (train() wrote it; rewriting it keeps its name).
    result["presentations"] = presentation_accuracy(learner.predict, test_episodes)["presentations"]
    write_result(result, run.folder)
    (run.folder / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    print("accuracy per presentation (%): " + ", ".join(
        f"{k}: {m:.1f} ± {c:.1f}" for k, (m, c) in result["presentations"].items()))
    return result


if __name__ == "__main__":
    from common.cli import run as run_script

    run_script(main)
