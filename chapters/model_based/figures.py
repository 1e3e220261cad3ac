"""The model-based chapter's figures (``make figures``; see ``common/plotting.py``).

From the committed results files:

* ``mann_presentations``: accuracy at the 1st, 2nd, ..., 10th presentation of a character, MANN
  and the LSTM baseline, each framework's most recent run beside Santoro et al.'s Table 1.

From a small deterministic PyTorch run (one thread, seed 0):

* ``mann_memory``: inside a MANN's memory over one test episode, after a short training: the read
  and write weights of the first head over the 128 rows at every step, and every row's usage.

The notebook draws its own runs with the same ``draw_presentations`` and ``draw_memory``.
"""

from __future__ import annotations

import numpy as np

from common.plotting import FRAMEWORK_COLOURS, FRAMEWORK_NAMES, NEUTRAL, PAPER_COLOUR, Figure, new_figure

FRAMEWORKS = ("torch", "tf", "keras")
PRESENTATIONS = (1, 2, 3, 4, 5, 10)
NAMES = {"mann": "MANN (LSTM + LRUA memory)", "lstm": "LSTM baseline"}


# -------------------------------------------------------------------- accuracy per presentation

def presentations_data() -> dict:
    from common.results import PUBLISHED_PRESENTATIONS, RESULTS_DIR, load_results

    folder = RESULTS_DIR / "model_based"
    latest = {}
    for result in sorted(load_results(folder) if folder.exists() else [], key=lambda r: r.get("date", "")):
        if "presentations" in result:
            latest[(result["algorithm"], result["framework"])] = result
    panels = []
    for model in ("mann", "lstm"):
        paper, source = PUBLISHED_PRESENTATIONS[(model, "omniglot", 5, 10)]
        ours = {framework: {"presentations": run["presentations"], "updates": run["train_episodes"]}
                for framework in FRAMEWORKS if (run := latest.get((model, framework))) is not None}
        panels.append({"model": model, "source": source, "paper": {str(k): v for k, v in paper.items()}, "ours": ours})
    return {"panels": panels}


def draw_presentations(data: dict):
    figure, axes = new_figure(1, len(data["panels"]), height=3.2, sharey=True)
    axes = np.atleast_1d(axes)
    for ax, panel in zip(axes, data["panels"]):
        ks = [int(k) for k in panel["paper"]]
        ax.plot(ks, list(panel["paper"].values()), color=PAPER_COLOUR, linestyle="--", marker="_", markersize=12,
                label="paper")
        for offset, (framework, run) in zip((-0.12, 0, 0.12), panel["ours"].items()):
            # in order of presentation: the results store them under text keys, where "10" sorts before "2"
            points = sorted((int(k), *v) for k, v in run["presentations"].items() if int(k) in ks)
            ax.errorbar([k + offset for k, _, _ in points], [m for _, m, _ in points], [c for _, _, c in points],
                        marker="o", markersize=4, capsize=2, color=FRAMEWORK_COLOURS[framework],
                        label=f"{FRAMEWORK_NAMES[framework]} ({run['updates']:,} updates)")
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
    settings = mann.network_settings(mann.parse_args([]))
    learner = mann.build_learner("torch", "mann", settings, seed=0)
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


FIGURES = [
    Figure("mann_presentations", presentations_data, draw_presentations),
    # A training run: the test recomputes a 2-update run of the same code (see common/plotting.py).
    Figure("mann_memory", memory_data, draw_memory, size={"updates": 300}, check_size={"updates": 2}, rtol=1e-3),
]
