"""The model-based chapter's figures (``make figures``; see ``common/plotting.py``).

From the committed results files:

* ``mann_presentations``: accuracy at the 1st, 2nd, ..., 10th presentation of a character, MANN
  and the LSTM baseline, each framework's run as the results table chooses it, beside Santoro et al.'s Table 1.

From a small deterministic PyTorch run (one thread, seed 0):

* ``mann_memory``: inside a MANN's memory over one test episode, after a short training: the read
  and write weights of the first head over the 128 rows at every step, and every row's usage.

* ``metanet_fast_weights``: inside a Meta Network after a short training (fast weights in the two
  dense layers): the size of each layer's slow weights beside the fast weights a query reads,
  and every query's attention over the support memory, for one fixed test episode.

``snail_checkpoint_inspect`` gives the numbers, not a figure, of where a trained SNAIL's queries
look (the chapter's "label by elimination"): the attention on the support step of their own class;
``metanet_checkpoint_inspect`` those of a trained MetaNet: its slow and fast weights' sizes per
layer and its queries' attention over the support memory.

The notebook draws its own runs with the same ``draw_presentations``, ``draw_memory`` and
``draw_metanet``.
"""

from __future__ import annotations

import numpy as np

from chapters.model_based.metanet import ALL_LAYERS
from common.plotting import FRAMEWORK_COLOURS, FRAMEWORK_NAMES, NEUTRAL, PAPER_COLOUR, Figure, new_figure

FRAMEWORKS = ("torch", "tf", "keras")
PRESENTATIONS = (1, 2, 3, 4, 5, 10)
NAMES = {"mann": "MANN (LSTM + LRUA memory)", "lstm": "LSTM baseline"}


def numpy(tensor) -> np.ndarray:
    """A tensor of any framework as a NumPy array (a PyTorch one detached from its graph first)."""
    return np.asarray(tensor.detach().cpu() if hasattr(tensor, "detach") else tensor)


def read_episode(model, episode, framework: str):
    """``model.read(support_x, support_y, query_x)`` on one episode in inference mode, whatever the
    framework: PyTorch gets tensors on the model's device, in ``eval()`` mode and without a graph;
    TensorFlow and Keras get the episode's arrays with ``training=False``. Each model's ``read``
    returns its logits first, then what the figures look at."""
    if framework == "torch":
        import torch

        from common.adapters import to_torch
        model.eval()
        support_x, support_y, query_x, _ = to_torch(episode, next(model.parameters()).device)
        with torch.no_grad():
            return model.read(support_x, support_y, query_x)
    return model.read(episode.support_x, episode.support_y, episode.query_x, training=False)


def own_class_attention(attention: np.ndarray, support_y, query_y) -> tuple[np.ndarray, np.ndarray]:
    """For each query (a row of ``attention`` over the support examples, (Q, S)): the weight it puts
    on the support examples of its own class, and whether its largest weight falls on one of them."""
    same_class = np.asarray(support_y)[None, :] == np.asarray(query_y)[:, None]  # (Q, S)
    return (attention * same_class).sum(1), same_class[np.arange(len(same_class)), attention.argmax(1)]


# -------------------------------------------------------------------- accuracy per presentation

def presentations_data() -> dict:
    from common.results import PUBLISHED_PRESENTATIONS, RESULTS_DIR, chosen_runs, deviation_labels, labels, load_results

    folder = RESULTS_DIR / "model_based"
    # A run with a deviation (such as --add-vector) is a series of its own, never the paper's method's
    latest = chosen_runs([r for r in (load_results(folder) if folder.exists() else []) if "presentations" in r],
                         lambda r: (r["algorithm"], r["framework"], tuple(labels(r))))
    panels = []
    for model in ("mann", "lstm"):
        paper, source = PUBLISHED_PRESENTATIONS[(model, "omniglot", 5, 10)]
        ours = [{"framework": framework, "variant": deviation_labels(variant).strip(),
                 "presentations": run["presentations"], "updates": run["train_episodes"]}
                for (algorithm, framework, variant), run in sorted(
                    latest.items(), key=lambda item: (item[0][2], FRAMEWORKS.index(item[0][1])))
                if algorithm == model]
        panels.append({"model": model, "source": source, "paper": {str(k): v for k, v in paper.items()}, "ours": ours})
    return {"panels": panels}


def draw_presentations(data: dict):
    figure, axes = new_figure(1, len(data["panels"]), height=3.2, sharey=True)
    axes = np.atleast_1d(axes)
    for ax, panel in zip(axes, data["panels"]):
        ks = [int(k) for k in panel["paper"]]
        ax.plot(ks, list(panel["paper"].values()), color=PAPER_COLOUR, linestyle="--", marker="_", markersize=12,
                label="paper")
        for offset, run in zip((-0.12, 0, 0.12, 0.24), panel["ours"]):
            # in order of presentation: the results store them under text keys, where "10" sorts before "2"
            points = sorted((int(k), *v) for k, v in run["presentations"].items() if int(k) in ks)
            name = " ".join(filter(None, (FRAMEWORK_NAMES[run["framework"]], run["variant"])))
            ax.errorbar([k + offset for k, _, _ in points], [m for _, m, _ in points], [c for _, _, c in points],
                        marker="s" if run["variant"] else "o", markersize=4, capsize=2,
                        linestyle=":" if run["variant"] else "-", color=FRAMEWORK_COLOURS[run["framework"]],
                        label=f"{name} ({run['updates']:,} updates)")
        ax.axhline(20, color=NEUTRAL, linewidth=0.8)
        ax.set(title=NAMES[panel["model"]], xlabel="presentation of the character", xticks=ks, ylim=(0, 100),
               ylabel="test accuracy (%)" if ax is axes[0] else None)
        ax.legend(fontsize=7, loc="lower right")
    figure.suptitle("Online Omniglot, 5 characters x 10 drawings: accuracy per presentation (95% intervals)",
                    fontsize=10)
    figure.tight_layout()
    return figure


# ----------------------------------------------------------------------------- the memory

def memory_data(updates: int = 300) -> dict:
    """Train a paper-sized MANN (PyTorch, one thread, seed 0) for ``updates`` batches of 16
    episodes, then trace the first fixed test episode."""
    import torch

    from chapters.model_based import mann
    from common.data import load_dataset
    from common.episodes import EVALUATION_SEED, MetaBatches

    torch.set_num_threads(1)
    train_set = load_dataset("omniglot", "trainval", image_size=20, scheme="vinyals")
    test_set = load_dataset("omniglot", "test", image_size=20, scheme="vinyals")
    learner = mann.build_learner("torch", "mann", mann.MANNConfig().network(), seed=0)
    batches = MetaBatches(mann.SequenceSampler(train_set, 5, 10, seed=0, shift=2.0, angle=10.0), 16)
    for index in range(updates):
        learner.train_step(batches.episode(index))
    episode = mann.SequenceSampler(test_set, 5, 10, EVALUATION_SEED).episode(0)
    trace = learner.trace(episode)
    return {"updates": updates, "labels": episode.query_y, "predicted": trace["logits"].argmax(-1),
            "read_weights": trace["read_weights"][:, 0], "write_weights": trace["write_weights"][:, 0],
            "usage": trace["usage"]}


def draw_memory(data: dict):
    figure, axes = new_figure(1, 3, height=3.4, sharey=True)
    for ax, (name, key) in zip(axes, (("read weights, head 1", "read_weights"),
                                      ("write weights, head 1", "write_weights"), ("usage", "usage"))):
        image = ax.imshow(np.asarray(data[key]), aspect="auto", cmap="viridis", interpolation="nearest")
        ax.set(title=name, xlabel="memory row")
        figure.colorbar(image, ax=ax, fraction=0.05)
    axes[0].set_ylabel("step of the episode")
    figure.suptitle(f"A MANN's memory over one test episode (50 steps, 128 rows), after {data['updates']:,} "
                    f"updates", fontsize=10)
    figure.tight_layout()
    return figure


# ----------------------------------------------------------------------------- SNAIL

def snail_inspect(model, episodes, framework: str) -> dict:
    """Where a trained SNAIL's queries look, over ``episodes`` (in inference mode: BatchNorm with
    the support set's statistics, as at test time). For each of the three attention blocks: the
    mean weight a query puts on the support step of its own class, the mean weight on its own
    step, and the fraction of queries whose largest support weight is on a step of their own class;
    an even spread over S support steps and the query itself is 1 / (S + 1). Also the accuracy."""
    own, itself, picked, correct = [[], [], []], [[], [], []], [[], [], []], []
    for episode in episodes:
        logits, attentions, _ = read_episode(model, episode, framework)
        correct.append(np.argmax(np.asarray(logits), 1) == np.asarray(episode.query_y))
        for block, attention in enumerate(attentions):
            attention = np.asarray(attention, dtype=np.float64)  # (Q, S + 1): support steps, then itself
            weight, largest = own_class_attention(attention[:, :-1], episode.support_y, episode.query_y)
            own[block].append(weight)
            itself[block].append(attention[:, -1])
            picked[block].append(largest)
    mean = lambda values: [float(np.concatenate(v).mean()) for v in values]  # noqa: E731
    return {"queries": int(sum(len(c) for c in correct)), "accuracy": float(np.concatenate(correct).mean()),
            "even": 1 / (len(episodes[0].support_y) + 1), "own_class": mean(own), "itself": mean(itself),
            "own_class_largest": mean(picked)}


def snail_checkpoint_inspect(checkpoint, way: int = 5, shot: int = 1, episodes: int = 50) -> dict:
    """``snail_inspect`` of a PyTorch SNAIL training run's checkpoint (``checkpoint.npz`` in its run
    folder) on the first ``episodes`` fixed test episodes, support shuffled as in training."""
    from chapters.model_based.snail import ShuffledSupport
    from chapters.model_based.snail_torch import SNAIL
    from common.data import load_dataset
    from common.episodes import FixedEpisodes, evaluation_episodes
    from common.weights import from_canonical, load_weights, model_weights

    model = SNAIL(1, way, shot)
    from_canonical(model_weights(load_weights(checkpoint)[0]), model, "torch")
    source = ShuffledSupport(evaluation_episodes(load_dataset("omniglot", "test"), way, shot, 15).source)
    return snail_inspect(model, FixedEpisodes(source, episodes), "torch")


# ----------------------------------------------------------------------------- Meta Networks

LAYERS = ("conv 1", "conv 2", "conv 3", "conv 4", "conv 5", "dense 64", "output")


def metanet_inspect(model, episode, framework: str) -> dict:
    """What ``draw_metanet`` draws, from a MetaNet of any framework on one episode: each layer's
    slow-weight norm ||W||, the mean norm of the fast weights the queries read ||W*|| (0 for a
    layer without), and the queries' attention over the support examples. Also, per layer, how
    much of the memory is the support examples' own: the mean norm of an example's fast weights
    minus the episode's mean fast weights, ||M_i - mean_j M_j|| (0 where all examples wrote the same)."""
    _, attention, _, memory = read_episode(model, episode, framework)
    slow = [numpy(kernel) for kernel in model.base.kernels]
    attention = np.asarray(attention, dtype=np.float64)
    fast_norms, example_norms = [], []
    for kernels in memory:  # a query's fast weights are sum_i a_i M_i: their norm, averaged over the queries
        if kernels is None:
            fast_norms.append(0.0)
            example_norms.append(0.0)
            continue
        memory_rows = np.asarray(kernels, dtype=np.float64).reshape(len(episode.support_y), -1)
        fast_norms.append(float(np.linalg.norm(attention @ memory_rows, axis=1).mean()))
        example_norms.append(float(np.linalg.norm(memory_rows - memory_rows.mean(0), axis=1).mean()))
    return {"slow_norms": [float(np.linalg.norm(np.asarray(w, dtype=np.float64))) for w in slow],
            "fast_norms": fast_norms, "example_norms": example_norms, "attention": attention,
            "support_y": np.asarray(episode.support_y), "query_y": np.asarray(episode.query_y)}


def metanet_checkpoint_inspect(checkpoint, way: int = 5, episodes: int = 50,
                               fast_layers: int = ALL_LAYERS) -> dict:
    """``metanet_inspect`` of a PyTorch MetaNet training run's checkpoint (``checkpoint.npz`` in its
    run folder; ``fast_layers`` as the run was trained) over the first ``episodes`` fixed ``way``-way
    1-shot test episodes: the layers' slow norms, the queries' mean fast-weight norms per layer, the
    mean attention on the support example of the query's own class and how often that example has
    the largest weight (an even spread is 1 / way), and the layers' example norms (what of the
    memory differs from one support example to another)."""
    from chapters.model_based import metanet
    from common.data import load_dataset
    from common.episodes import FixedEpisodes, evaluation_episodes
    from common.weights import from_canonical, load_weights, model_weights

    model = metanet.build_model("torch", (28, 28, 1), way, 0, fast_layers)
    from_canonical(model_weights(load_weights(checkpoint)[0]), model, "torch")
    test = FixedEpisodes(evaluation_episodes(load_dataset("omniglot", "test"), way, 1, 15).source, episodes)
    own, largest, fast_norms, example_norms = [], [], [], []
    for episode in test:
        data = metanet_inspect(model, episode, "torch")
        weight, on_own_class = own_class_attention(data["attention"], data["support_y"], data["query_y"])
        own.append(weight)
        largest.append(on_own_class)
        fast_norms.append(data["fast_norms"])
        example_norms.append(data["example_norms"])
    return {"episodes": episodes, "even": 1 / way, "own_class": float(np.concatenate(own).mean()),
            "own_class_largest": float(np.concatenate(largest).mean()), "slow_norms": data["slow_norms"],
            "fast_norms": [float(norm) for norm in np.mean(fast_norms, axis=0)],
            "example_norms": [float(norm) for norm in np.mean(example_norms, axis=0)]}


def metanet_data(episodes: int = 1000) -> dict:
    """Train a MetaNet with fast dense layers (PyTorch, one thread, seed 0, 5-way 1-shot) for
    ``episodes`` episodes, then look at the first fixed 5-way 1-shot test episode."""
    import torch

    from chapters.model_based import metanet
    from common.data import load_dataset
    from common.episodes import EpisodeSampler, evaluation_episodes

    torch.set_num_threads(1)
    sampler = EpisodeSampler(load_dataset("omniglot", "train"), 5, 1, 5, seed=0)
    learner = metanet.build_learner("torch", (28, 28, 1), 5, sampler.episode(0), 1e-3, None, 0, fast_layers=2)
    for index in range(episodes):
        learner.train_step(sampler.episode(index))
    episode = evaluation_episodes(load_dataset("omniglot", "test"), 5, 1, 15).source.episode(0)
    return {"episodes": episodes, **metanet_inspect(learner.model, episode, "torch")}


def draw_metanet(data: dict):
    figure, (norms, reads) = new_figure(1, 2, height=3.4, gridspec_kw={"width_ratios": [1.3, 1]})
    x = np.arange(len(LAYERS))
    norms.bar(x - 0.2, data["slow_norms"], 0.4, color=NEUTRAL, label="slow weights W")
    norms.bar(x + 0.2, data["fast_norms"], 0.4, color=FRAMEWORK_COLOURS["torch"], label="a query's fast weights W*")
    norms.set(xticks=x, yscale="log", ylabel="Frobenius norm", title="b's layers: slow and fast weights")
    norms.set_xticklabels(LAYERS, rotation=45, ha="right")
    norms.legend(fontsize=7)
    order = np.argsort(data["query_y"], kind="stable")
    image = reads.imshow(np.asarray(data["attention"])[order], aspect="auto", vmin=0, vmax=1, cmap="viridis",
                         interpolation="nearest")
    reads.set(title="attention over the memory", xlabel="support example (its class)",
              ylabel="query (sorted by class)", xticks=range(len(data["support_y"])))
    reads.set_xticklabels([str(y) for y in data["support_y"]])
    reads.grid(False)
    figure.colorbar(image, ax=reads, fraction=0.05)
    figure.suptitle(f"A Meta Network (fast dense layers) on one 5-way 1-shot test episode, after "
                    f"{data['episodes']:,} episodes", fontsize=10)
    figure.tight_layout()
    return figure


FIGURES = [
    Figure("mann_presentations", presentations_data, draw_presentations),
    # A training run: the test recomputes a 2-update run of the same code (see common/plotting.py).
    Figure("mann_memory", memory_data, draw_memory, size={"updates": 300}, check_size={"updates": 2}, rtol=1e-3),
    Figure("metanet_fast_weights", metanet_data, draw_metanet, size={"episodes": 1000}, check_size={"episodes": 2},
           rtol=1e-3),
]
