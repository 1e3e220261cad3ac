"""The foundations chapter's figures (``make figures``; see ``common/plotting.py``).

* ``episode``: two 5-way 1-shot Omniglot episodes of one sampler, each labelled 0..4 afresh;
* ``confidence_interval``: the mean accuracy of pixel nearest neighbour and its 95% interval over
  the first n of the 600 fixed test episodes, the interval shrinking like 1/√n;
* ``baselines``: chance, pixel nearest neighbour and a meta-learner (the committed ProtoNet runs)
  on the four Omniglot settings; the no-adaptation sinusoid baselines beside MAML.

Everything is computed from the fixed evaluation episodes and the committed results files: no
training, a few seconds per figure.
"""

from __future__ import annotations

import numpy as np

from common.plotting import FRAMEWORK_COLOURS, NEUTRAL, OKABE_ITO, Figure, new_figure, plain_ticks

SETTINGS = [(5, 1), (5, 5), (20, 1), (20, 5)]  # (way, shot) of the Omniglot tables


def omniglot(split: str):
    from common.data import load_dataset

    return load_dataset("omniglot", split)


def pixel_nearest_neighbour(support_x, support_y, query_x):
    """Exercise 3's baseline: the label of each query's nearest support image in pixel space."""
    support = support_x.reshape(len(support_x), -1).astype(np.float64)
    queries = query_x.reshape(len(query_x), -1).astype(np.float64)
    distances = (queries ** 2).sum(axis=1)[:, None] - 2 * queries @ support.T + (support ** 2).sum(axis=1)
    return np.asarray(support_y)[distances.argmin(axis=1)]


def nearest_neighbour_accuracies(way: int, shot: int) -> np.ndarray:
    """Per-episode accuracy (%) of pixel nearest neighbour on the 600 fixed test episodes."""
    from common.episodes import evaluation_episodes

    episodes = evaluation_episodes(omniglot("test"), way=way, shot=shot, query=15)
    return np.array([100 * np.mean(pixel_nearest_neighbour(e.support_x, e.support_y, e.query_x) == e.query_y)
                     for e in episodes])


# ----------------------------------------------------------------------------------- episode

def episode_data(way: int = 5, shot: int = 1, query: int = 4, indices=(0, 1)) -> dict:
    from common.episodes import EpisodeSampler

    train = omniglot("train")
    sampler = EpisodeSampler(train, way, shot, query, seed=0)
    episodes = [sampler.episode(i) for i in indices]
    return {"dataset": "omniglot/train", "way": way, "shot": shot, "query": query, "seed": 0,
            "episodes": [{"index": i, "classes": [train.class_names[c] for c in sampler.classes_of(i)],
                          "support_y": e.support_y, "query_y": e.query_y,
                          "support_pixel_sums": e.support_x.sum(axis=(1, 2, 3)).round(3)}
                         for i, e in zip(indices, episodes)],
            "_episodes": episodes}


def draw_episode(data: dict):
    from common.viewer import draw_episodes

    panels = [(f"episode {e['index']}", episode, e["classes"])
              for e, episode in zip(data["episodes"], data["_episodes"])]
    return draw_episodes(panels, f"Two {data['way']}-way {data['shot']}-shot episodes of one sampler "
                                 f"(Omniglot training classes): the labels 0..{data['way'] - 1} are new in each")


# ------------------------------------------------------------------------- confidence interval

def confidence_interval_data(way: int = 5, shot: int = 1) -> dict:
    from common.evaluation import mean_ci95

    accuracies = nearest_neighbour_accuracies(way, shot)
    counts = [10, 15, 25, 40, 60, 100, 150, 250, 400, 600]
    means, ci95 = zip(*(mean_ci95(accuracies[:n]) for n in counts))
    return {"method": "pixel nearest neighbour", "way": way, "shot": shot, "query": 15, "episodes": counts,
            "accuracy": means, "ci95": ci95, "std_600": float(accuracies.std(ddof=1))}


def draw_confidence_interval(data: dict):
    figure, (left, right) = new_figure(1, 2, height=2.9)
    n, mean, ci = (np.array(data[key]) for key in ("episodes", "accuracy", "ci95"))
    colour = OKABE_ITO["blue"]
    left.fill_between(n, mean - ci, mean + ci, color=colour, alpha=0.25, linewidth=0, label="95% interval")
    left.plot(n, mean, "o-", color=colour, label="mean over the first n episodes")
    left.set(xscale="log", xlabel="test episodes n (log scale)", ylabel="accuracy (%)",
             title=f"Mean accuracy, {data['way']}-way {data['shot']}-shot")
    left.legend(loc="lower right")
    right.plot(n, ci, "o-", color=colour, label="ci95 = 1.96 s / √n, measured")
    right.plot(n, 1.96 * data["std_600"] / np.sqrt(n), ":", color=OKABE_ITO["black"],
               label=f"1.96 · {data['std_600']:.1f} / √n")
    right.set(xscale="log", yscale="log", xlabel="test episodes n (log scale)",
              ylabel="half-width of the interval (points)", title="The interval shrinks like 1/√n")
    right.legend(loc="upper right")
    plain_ticks(left, x=[10, 25, 100, 250, 600])
    plain_ticks(right, x=[10, 25, 100, 250, 600], y=[1, 2, 4, 6])
    figure.suptitle(f"{data['method'].capitalize()} on the fixed Omniglot test episodes "
                    f"({data['query']} queries per class)", fontsize=10)
    figure.tight_layout()
    return figure


# ------------------------------------------------------------------------------------- baselines

def protonet_results() -> dict:
    """{(way, shot): (accuracy, ci95, training episodes)} of the PyTorch ProtoNet runs the results table shows."""
    from common.results import RESULTS_DIR, chosen_runs, load_results

    runs = [r for r in load_results(RESULTS_DIR / "metric")
            if (r["algorithm"], r["framework"], r["dataset"]) == ("protonet", "torch", "omniglot")]
    return {cell: (r["accuracy"], r["ci95"], r["train_episodes"])
            for cell, r in chosen_runs(runs, lambda r: (r["way"], r["shot"])).items()}


def sinusoid_maml_result() -> dict:
    from common.results import RESULTS_DIR, load_results, training_then_date

    runs = [r for r in load_results(RESULTS_DIR / "optimization")
            if (r["algorithm"], r["framework"], r["shot"]) == ("maml", "torch", 10)]
    run = max(runs, key=training_then_date)
    return {"iterations": run["train_episodes"], "after_1": [run["mse"], run["mse_ci95"]],
            "after_10": [run["mse_after_10_steps"], run["mse_after_10_steps_ci95"]]}


def baselines_data() -> dict:
    from common.data.sinusoid import evaluation_tasks
    from common.evaluation import mean_ci95

    protonet = protonet_results()
    omniglot_rows = []
    for way, shot in SETTINGS:
        nn_mean, nn_ci = mean_ci95(nearest_neighbour_accuracies(way, shot))
        accuracy, ci95, episodes = protonet[(way, shot)]
        omniglot_rows.append({"way": way, "shot": shot, "chance": 100 / way, "nearest_neighbour": [nn_mean, nn_ci],
                              "protonet": [accuracy, ci95], "protonet_episodes": episodes})
    average_wave = lambda x: -(2 * 2.55 / np.pi) * np.cos(x)  # E[A sin(x - φ)] for these ranges
    sinusoid = {}
    for name, guess in [("y = 0", lambda x: 0 * x), ("average wave", average_wave)]:
        sinusoid[name] = mean_ci95([float(np.mean((guess(e.query_x) - e.query_y) ** 2))
                                    for e in evaluation_tasks(shot=10)])
    return {"omniglot": omniglot_rows, "sinusoid": {"shot": 10, "tasks": 600, "no_adaptation": sinusoid,
                                                    "maml": sinusoid_maml_result()}}


def draw_baselines(data: dict):
    figure, (left, right) = new_figure(1, 2, height=3.2, gridspec_kw={"width_ratios": [2, 1]})
    rows = data["omniglot"]
    x = np.arange(len(rows))
    bars = [("chance", [r["chance"] for r in rows], None, NEUTRAL),
            ("pixel nearest neighbour", *zip(*[r["nearest_neighbour"] for r in rows]), OKABE_ITO["blue"]),
            (f"ProtoNet (PyTorch, {rows[0]['protonet_episodes']:,} episodes)",
             *zip(*[r["protonet"] for r in rows]), FRAMEWORK_COLOURS["torch"])]
    width = 0.26
    for i, (name, values, errors, colour) in enumerate(bars):
        position = x + (i - 1) * width
        left.bar(position, values, width, yerr=errors, color=colour, label=name)
        for px, value in zip(position, values):
            left.text(px, value + 1, f"{value:.0f}", ha="center", va="bottom", fontsize=7)
    left.set_xticks(x, [f"{r['way']}-way\n{r['shot']}-shot" for r in rows])
    left.set(ylabel="test accuracy (%)", ylim=(0, 107), title="Omniglot, 600 fixed test episodes")
    left.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3, fontsize=7)
    sinusoid = data["sinusoid"]
    names = ["y = 0", "average wave"]
    values = [sinusoid["no_adaptation"][n] for n in names]
    maml = sinusoid["maml"]
    values += [maml["after_1"], maml["after_10"]]
    labels = ["y = 0", "average\nwave", "MAML,\n1 step", "MAML,\n10 steps"]
    colours = [NEUTRAL, OKABE_ITO["blue"], FRAMEWORK_COLOURS["torch"], FRAMEWORK_COLOURS["torch"]]
    right.bar(np.arange(4), [v[0] for v in values], 0.6, yerr=[v[1] for v in values], color=colours)
    for i, (value, _) in enumerate(values):
        right.text(i + 0.32, value + 0.05, f"{value:.2f}", ha="left", va="bottom", fontsize=7)
    right.set_xticks(np.arange(4), labels, fontsize=7)
    right.set(ylabel="query MSE", title=f"Sinusoids, K = {sinusoid['shot']}")
    figure.suptitle("Baselines beside a meta-learner (MAML: PyTorch, "
                    f"{maml['iterations']:,} meta-iterations; bars: 95% intervals)", fontsize=10)
    figure.tight_layout()
    return figure


FIGURES = [
    Figure("episode", episode_data, draw_episode),
    Figure("confidence_interval", confidence_interval_data, draw_confidence_interval),
    Figure("baselines", baselines_data, draw_baselines),
]
