"""The metric chapter's figures (``make figures``; see ``common/plotting.py``).

From the committed results files:

* ``validation_curves``: validation accuracy during training, the three frameworks on one plot
  per method (5-way 1-shot Omniglot): the cross-framework agreement of section 5, made visible;
* ``results_vs_papers``: the test accuracies of every Omniglot setting beside the papers'.

From small deterministic PyTorch runs (one thread, seed 0; about a minute in all):

* ``episode``: one Omniglot training episode;
* ``embeddings``: a 5-way 5-shot test episode through ProtoNet's Conv-4 before and after a short
  training, projected onto its two principal directions, with the prototypes;
* ``attention``: a Matching Network's attention over the support set, with Eq. 2 as printed and
  with the cosine times the query's length, after the same short training: the printed softmax
  of cosines cannot be sharp.

The notebook draws its own runs with the same ``draw_embeddings`` and ``draw_attention``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from common.embedding_view import draw_embeddings as draw_prototype_views
from common.embedding_view import pca_2d, prototype_view  # noqa: F401 (the notebook projects its runs with pca_2d)
from common.plotting import FRAMEWORK_COLOURS, FRAMEWORK_NAMES, NEUTRAL, PAPER_COLOUR, Figure, new_figure

FRAMEWORKS = ("torch", "tf", "keras")
SETTINGS = [(5, 1), (5, 5), (20, 1), (20, 5)]
NAMES = {"protonet": "Prototypical Networks", "matching": "Matching Networks", "siamese": "Siamese networks"}
VARIANTS = {"": "Eq. 2 as printed", "distance cosine_times_query_norm": "cosine × |f(x̂)|"}


def omniglot(split: str):
    from common.data import load_dataset

    return load_dataset("omniglot", split)


def latest_runs() -> dict:
    """{(algorithm, deviations, way, shot, framework): result} of the committed Omniglot runs, the
    one the results table shows of each."""
    from common.results import RESULTS_DIR, chosen_runs, deviations, load_results

    return chosen_runs([r for r in load_results(RESULTS_DIR / "metric") if r["dataset"] == "omniglot"],
                       lambda r: (r["algorithm"], " ".join(deviations(r.get("options", {}))), r["way"], r["shot"],
                                  r["framework"]))


# ------------------------------------------------------------------------------------ episode

def episode_data(way: int = 5, shot: int = 5, query: int = 3, index: int = 0) -> dict:
    from common.episodes import EpisodeSampler

    train = omniglot("train")
    sampler = EpisodeSampler(train, way, shot, query, seed=0)
    episode = sampler.episode(index)
    return {"dataset": "omniglot/train", "way": way, "shot": shot, "query": query, "seed": 0, "index": index,
            "classes": [train.class_names[c] for c in sampler.classes_of(index)],
            "support_pixel_sums": episode.support_x.sum(axis=(1, 2, 3)).round(3), "_episode": episode}


def draw_episode(data: dict):
    from common.viewer import draw_episodes

    return draw_episodes([(None, data["_episode"], data["classes"])],
                         f"An Omniglot {data['way']}-way {data['shot']}-shot training episode, "
                         f"{data['query']} queries per class")


# -------------------------------------------------------------------------- validation curves

CURVES = [("protonet", ""), ("siamese", ""), ("matching", ""), ("matching", "distance cosine_times_query_norm")]


def validation_curves_data(way: int = 5, shot: int = 1) -> dict:
    runs = latest_runs()
    panels = []
    for algorithm, variant in CURVES:
        curves = {}
        for framework in FRAMEWORKS:
            run = runs[(algorithm, variant, way, shot, framework)]
            curves[framework] = {
                "episode": [h["episode"] for h in run["history"]],
                "val_accuracy": [h["val_accuracy"] for h in run["history"]],
                "val_ci95": [h["val_ci95"] for h in run["history"]],
                "test_accuracy": run["accuracy"], "test_ci95": run["ci95"],
                "train": f"{run['train_way']}-way {run['train_shot']}-shot", "file": run["_file"].split("results/")[-1]}
        panels.append({"algorithm": algorithm, "variant": VARIANTS[variant], "curves": curves})
    return {"way": way, "shot": shot, "panels": panels}


def draw_validation_curves(data: dict):
    figure, axes = new_figure(2, 2, height=5.6, sharex=False)
    for ax, panel in zip(axes.flat, data["panels"]):
        for framework, curve in panel["curves"].items():
            episodes, accuracy, ci = (np.array(curve[k]) for k in ("episode", "val_accuracy", "val_ci95"))
            colour = FRAMEWORK_COLOURS[framework]
            ax.fill_between(episodes, accuracy - ci, accuracy + ci, color=colour, alpha=0.15, linewidth=0)
            ax.plot(episodes, accuracy, color=colour, marker="o", markersize=2.5,
                    label=f"{FRAMEWORK_NAMES[framework]}: test {curve['test_accuracy']:.1f} ± {curve['test_ci95']:.1f}")
        train = next(iter(panel["curves"].values()))["train"]
        name = NAMES[panel["algorithm"]] + (f", {panel['variant']}" if panel["algorithm"] == "matching" else "")
        ax.set_title(f"{name}\n(trained {train})", fontsize=9)
        ax.set(xlabel="training episode", ylabel="validation accuracy (%)")
        ax.legend(loc="lower right", fontsize=7)
    figure.suptitle(f"Validation during training, {data['way']}-way {data['shot']}-shot Omniglot "
                    "(100 fixed episodes, 95% bands)", fontsize=10)
    figure.tight_layout()
    return figure


# --------------------------------------------------------------------------- results vs papers

def results_vs_papers_data() -> dict:
    from common.results import PUBLISHED

    runs = latest_runs()
    panels = []
    for algorithm, variants in (("protonet", [""]), ("matching", ["", "distance cosine_times_query_norm"]),
                                ("siamese", [""])):
        rows = []
        for way, shot in SETTINGS:
            row = {"way": way, "shot": shot, "paper": PUBLISHED[(algorithm, "omniglot", way, shot)][0], "ours": {}}
            for variant in variants:
                row["ours"][VARIANTS[variant]] = {
                    framework: [runs[key]["accuracy"], runs[key]["ci95"], runs[key]["train_episodes"]]
                    for framework in FRAMEWORKS if (key := (algorithm, variant, way, shot, framework)) in runs}
            rows.append(row)
        panels.append({"algorithm": algorithm, "source": PUBLISHED[(algorithm, "omniglot", 5, 1)][1], "rows": rows})
    return {"panels": panels}


def draw_results_vs_papers(data: dict):
    figure, axes = new_figure(1, 3, height=3.4)
    markers = {VARIANTS[""]: "o", VARIANTS["distance cosine_times_query_norm"]: "^"}
    for ax, panel in zip(axes, data["panels"]):
        x = np.arange(len(panel["rows"]))
        ax.scatter(x, [row["paper"] for row in panel["rows"]], marker="_", s=400, linewidths=2.5,
                   color=PAPER_COLOUR, label="paper", zorder=3)
        for row_index, row in enumerate(panel["rows"]):
            for variant, by_framework in row["ours"].items():
                for offset, (framework, (accuracy, ci, _)) in zip((-0.2, 0, 0.2), by_framework.items()):
                    ax.errorbar(row_index + offset, accuracy, ci, marker=markers[variant], markersize=4,
                                color=FRAMEWORK_COLOURS[framework], linestyle="none",
                                markerfacecolor="white" if markers[variant] == "^" else FRAMEWORK_COLOURS[framework])
        ax.set_xticks(x, [f"{row['way']}-way\n{row['shot']}-shot" for row in panel["rows"]])
        ax.set(title=NAMES[panel["algorithm"]], ylabel="test accuracy (%)" if ax is axes[0] else None)
        ax.set_xlim(-0.5, len(x) - 0.5)
    handles = [axes[0].scatter([], [], marker="_", s=200, linewidths=2.5, color=PAPER_COLOUR, label="paper")]
    handles += [axes[0].errorbar([], [], [], marker="o", linestyle="none", color=FRAMEWORK_COLOURS[f],
                                 label=FRAMEWORK_NAMES[f]) for f in FRAMEWORKS]
    handles += [axes[0].scatter([], [], marker="^", facecolors="white", edgecolors=NEUTRAL,
                                label="Matching: cosine × |f(x̂)| (a labelled deviation)")]
    figure.legend(handles=handles, loc="lower center", ncol=5, fontsize=7, bbox_to_anchor=(0.5, -0.02))
    figure.suptitle("Omniglot test accuracy, 600 fixed episodes (95% intervals), beside the papers", fontsize=10)
    figure.tight_layout(rect=(0, 0.07, 1, 1))
    return figure


# ----------------------------------------------------------------- small deterministic runs

@lru_cache(maxsize=8)
def trained(algorithm: str, episodes: int, way: int = 5, shot: int = 1, query: int = 5, **options):
    """(untrained model, trained model): the chapter's PyTorch learner of ``algorithm`` after
    ``episodes`` Adam steps on training episodes of one sampler (seed 0, one thread: the same
    numbers every time on a machine)."""
    import torch

    from chapters.metric.train import build_learner
    from common.episodes import EpisodeSampler

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sampler = EpisodeSampler(omniglot("train"), way, shot, query, seed=0)
        untrained = build_learner(algorithm, "torch", 1, sampler.episode(0), 1e-3, None, 0, **options).model
        learner = build_learner(algorithm, "torch", 1, sampler.episode(0), 1e-3, None, 0, **options)
        for index in range(episodes):
            learner.train_step(sampler.episode(index))
        return untrained, learner.model
    finally:
        torch.set_num_threads(threads)


def test_episode(way: int = 5, shot: int = 5, query: int = 15):
    from common.episodes import evaluation_episodes

    return evaluation_episodes(omniglot("test"), way=way, shot=shot, query=query, count=1)[0]


def embed(model, images) -> np.ndarray:
    """Conv-4 embeddings of NumPy images (n, 28, 28, 1), BatchNorm with its running statistics."""
    import torch

    model.eval()
    with torch.no_grad():
        return model.encoder(torch.from_numpy(images).movedim(-1, -3)).numpy()


def protonet_view(model, episode, way: int) -> dict:
    """An episode's queries and prototypes through ``model``, in 2-D, and which queries are right."""
    return prototype_view(embed(model, episode.support_x), episode.support_y, embed(model, episode.query_x),
                          episode.query_y, way)


def embeddings_data(episodes: int = 600) -> dict:
    untrained, model = trained("protonet", episodes)
    episode = test_episode()
    return {"algorithm": "protonet", "framework": "torch", "train": "5-way 1-shot 5-query", "episodes": episodes,
            "test_episode": "first fixed 5-way 5-shot test episode, 15 queries per class",
            "query_y": episode.query_y, "way": 5,
            "panels": {"before training": protonet_view(untrained, episode, 5),
                       f"after {episodes:,} episodes": protonet_view(model, episode, 5)}}


def draw_embeddings(data: dict):
    return draw_prototype_views(data["panels"], data["query_y"], [f"class {k}" for k in range(data["way"])],
                                "ProtoNet (PyTorch) embeddings of a 5-way 5-shot test episode; stars: prototypes")


def matching_view(model, episode, way: int, shown: np.ndarray) -> dict:
    """The attention a(x̂, x_i) of the ``shown`` queries over the support set (Eq. 2 with the
    model's own similarity), and the largest weight over all queries."""
    import torch

    from chapters.metric.matching_torch import attention

    model.eval()
    with torch.no_grad():
        support, query = model.embed(torch.from_numpy(episode.support_x).movedim(-1, -3),
                                     torch.from_numpy(episode.query_x).movedim(-1, -3))
        weights = attention(query, support, model.cosine_scale, model.distance).numpy()
    predicted = np.stack([weights[:, episode.support_y == k].sum(axis=1) for k in range(way)], axis=1).argmax(axis=1)
    return {"distance": model.distance, "weights": weights[shown].round(5), "max_weight": float(weights.max()),
            "accuracy": 100 * float(np.mean(predicted == episode.query_y))}


def attention_data(episodes: int = 600) -> dict:
    episode = test_episode()
    shown = np.concatenate([np.flatnonzero(episode.query_y == k)[:2] for k in range(5)])  # two queries a class
    views = {}
    for name, distance in (("Eq. 2 as printed: softmax of cosines", "cosine"),
                           ("cosine × |f(x̂)| (a labelled deviation)", "cosine_times_query_norm")):
        _, model = trained("matching", episodes, fce=False, distance=distance)
        views[name] = matching_view(model, episode, 5, shown)
    support = len(episode.support_y)
    return {"algorithm": "matching", "framework": "torch", "train": "5-way 1-shot 5-query", "episodes": episodes,
            "test_episode": "first fixed 5-way 5-shot test episode", "support_y": episode.support_y,
            "shown_query_y": episode.query_y[shown], "support": support,
            "cosine_bound": float(np.e / (np.e + support - 1)), "panels": views}


def draw_attention(data: dict):
    figure, axes = new_figure(1, len(data["panels"]), height=3.4, layout="constrained")
    support_y, query_y = np.array(data["support_y"]), np.array(data["shown_query_y"])
    shot = int(np.sum(support_y == 0))
    # One colour scale for both panels, up to the largest weight shown (rounded up to 0.1).
    top = np.ceil(10 * max(np.max(view["weights"]) for view in data["panels"].values())) / 10
    for ax, (name, view) in zip(np.atleast_1d(axes), data["panels"].items()):
        image = ax.imshow(np.array(view["weights"]), cmap="viridis", vmin=0, vmax=top, aspect="auto")
        ax.grid(False)
        for boundary in np.arange(shot, len(support_y), shot) - 0.5:
            ax.axvline(boundary, color="white", linewidth=0.8)
        ax.set_xticks(np.arange(0, len(support_y), shot) + (shot - 1) / 2,
                      [f"class {k}" for k in range(len(support_y) // shot)], fontsize=7)
        ax.set_yticks(np.arange(len(query_y)), query_y, fontsize=7)
        ax.set(xlabel="support image (grouped by class)", ylabel="query's true class")
        bound = (f" (bound {data['cosine_bound']:.3f})" if view["distance"] == "cosine" else "")
        ax.set_title(f"{name}\nlargest weight {view['max_weight']:.3f}{bound}, accuracy {view['accuracy']:.0f}%",
                     fontsize=8)
    figure.colorbar(image, ax=axes, label="attention weight a(x̂, x_i)", fraction=0.04)
    figure.suptitle(f"Matching Network attention of 10 queries over {data['support']} support images "
                    f"(PyTorch, {data['episodes']:,} training episodes)", fontsize=10)
    return figure


FIGURES = [
    Figure("episode", episode_data, draw_episode),
    Figure("validation_curves", validation_curves_data, draw_validation_curves),
    Figure("results_vs_papers", results_vs_papers_data, draw_results_vs_papers),
    # Training runs: the test recomputes a 3-episode run of the same code (see common/plotting.py);
    # a thread count or CPU other than the committed run's moves the float32 numbers a little.
    Figure("embeddings", embeddings_data, draw_embeddings, size={"episodes": 600},
           check_size={"episodes": 3}, rtol=1e-3),
    Figure("attention", attention_data, draw_attention, size={"episodes": 600},
           check_size={"episodes": 3}, rtol=1e-3),
]
