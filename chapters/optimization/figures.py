"""The optimization chapter's figures (``make figures``; see ``common/plotting.py``).

From small deterministic PyTorch runs of the sinusoid script's learners (seed 0, one thread,
3,000 meta-iterations each, MAML's protocol otherwise; a few minutes in all):

* ``sinusoid_adaptation``: one fixed test task before and after 1 and 10 inner steps, MAML beside
  the pretrained baseline (Finn et al., Fig. 2);
* ``adaptation_steps``: query MSE after k inner steps on 100 fixed test tasks, for MAML,
  first-order MAML, Reptile and the pretrained baseline (Finn et al., Fig. 3);
* ``metasgd_rates``: Meta-SGD's learned inner rates α, parameter tensor by parameter tensor.

From the committed Omniglot results (``results/optimization/*.json``):

* ``omniglot_curves``: each run's validation accuracy during meta-training, its test accuracy and
  the paper's number, one panel per setting and class split.

From the committed benchmark (``results/optimization/timing.json``):

* ``timing``: seconds and memory per meta-iteration, first vs second order, per framework.

The notebook draws its own (shorter) runs with the same ``draw_*`` functions.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from matplotlib.ticker import NullFormatter

from common.plotting import (FRAMEWORK_COLOURS, FRAMEWORK_NAMES, NEUTRAL, OKABE_ITO, Figure,
                             new_figure)

SHOT, META_BATCH, SEED = 10, 25, 0
BEST_WITHOUT_ADAPTATION = 2.91  # the average wave's test MSE (foundations, section 7)
# The learners of the chapter's sinusoid experiments, as options of `python -m chapters.optimization.sinusoid`.
LEARNERS = {
    "MAML": ("maml", []),
    "first-order MAML": ("fomaml", []),
    "Reptile (5 steps)": ("reptile", ["--inner-steps", "5", "--meta-lr", "1.0", "--inner-lr", "0.02",
                                      "--meta-batch", "10"]),
    "Meta-SGD": ("metasgd", []),
}
PRETRAINED = "pretrained on all tasks"
COLOURS = {"MAML": OKABE_ITO["vermillion"], "first-order MAML": OKABE_ITO["orange"],
           "Reptile (5 steps)": OKABE_ITO["blue"], "Meta-SGD": OKABE_ITO["purple"], PRETRAINED: OKABE_ITO["green"]}


@lru_cache(maxsize=16)
def trained(name: str, iterations: int):
    """The PyTorch learner ``name`` after ``iterations`` meta-iterations on the sinusoid script's
    meta-batches (seed 0; one thread, so the same numbers every time on a machine).

    ``PRETRAINED`` is the baseline of Finn et al.: Reptile with one inner step and ε = 1 is one
    SGD step on the mean task loss, i.e. ordinary joint training (the notebook, section 2)."""
    import torch

    from chapters.optimization import sinusoid
    from chapters.optimization.reptile_torch import Reptile
    from common.data.sinusoid import SinusoidTasks
    from common.episodes import MetaBatches

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if name == PRETRAINED:
            from chapters.optimization.networks_torch import SinusoidMLP

            torch.manual_seed(SEED)
            learner, batch = Reptile(SinusoidMLP(), inner_lr=0.01, inner_steps=1, meta_lr=1.0), META_BATCH
        else:
            algorithm, extra = LEARNERS[name]
            args = sinusoid.parse(["--framework", "torch", "--algorithm", algorithm, "--shot", str(SHOT),
                                   "--iterations", str(iterations), "--log-every", str(iterations),
                                   "--meta-batch", str(META_BATCH), "--seed", str(SEED), *extra])
            config = sinusoid.SinusoidConfig.from_args(args)
            learner, batch = sinusoid.build_learner(config, "torch"), config.meta_batch
        batches = MetaBatches(SinusoidTasks(SHOT, SHOT, seed=SEED), batch)
        for index in range(iterations):
            learner.meta_step(batches.episode(index))
        return learner
    finally:
        torch.set_num_threads(threads)


def curves_after(learner, episode, grid: np.ndarray, steps) -> dict:
    """{k: f_θk(grid)}: the learner's θ adapted k first-order steps on the episode's support set."""
    import torch

    from chapters.optimization.maml_torch import adapt

    model = learner.model
    support_x, support_y = torch.from_numpy(episode.support_x), torch.from_numpy(episode.support_y)
    x = torch.from_numpy(grid)
    params, done, outputs = model.params(), 0, {}
    for k in sorted(steps):
        if k > done:
            params = adapt(model, params, support_x, support_y, learner.inner_lr, k - done, first_order=True)
            done = k
        outputs[k] = model.forward(params, x)[:, 0].detach().numpy()
    return outputs


# -------------------------------------------------------------------- one task, before and after

def sinusoid_adaptation_data(iterations: int = 3000, task: int = 0) -> dict:
    from common.data.sinusoid import evaluation_tasks

    tasks = evaluation_tasks(SHOT)
    episode = tasks[task]
    amplitude, phase = tasks.source.task(task)
    grid = np.linspace(-5, 5, 101, dtype=np.float32)[:, None]
    panels = {}
    for name in ("MAML", PRETRAINED):
        learner = trained(name, iterations)
        panels[name] = {"inner_lr": learner.inner_lr,
                        "curves": {str(k): v.round(4) for k, v in curves_after(learner, episode, grid, [0, 1, 10]).items()}}
    return {"framework": "torch", "iterations": iterations, "meta_batch": META_BATCH, "task": task, "amplitude": amplitude, "phase": phase,
            "grid": grid[:, 0], "support_x": episode.support_x[:, 0], "support_y": episode.support_y[:, 0],
            "panels": panels}


def draw_sinusoid_adaptation(data: dict):
    figure, axes = new_figure(1, len(data["panels"]), height=3.2, sharey=True)
    grid = np.array(data["grid"])
    truth = data["amplitude"] * np.sin(grid - data["phase"])
    styles = {"0": (":", NEUTRAL), "1": ("--", OKABE_ITO["orange"]), "10": ("-", OKABE_ITO["blue"])}
    for ax, (name, panel) in zip(axes, data["panels"].items()):
        ax.plot(grid, truth, color=OKABE_ITO["black"], linewidth=2.2, label="the task's wave")
        for k, values in panel["curves"].items():
            linestyle, colour = styles[k]
            ax.plot(grid, values, linestyle, color=colour,
                    label=f"after {k} step{'s' * (k != '1')}" if k != "0" else "before adaptation")
        ax.scatter(data["support_x"], data["support_y"], color=OKABE_ITO["vermillion"], marker="^", zorder=4,
                   label=f"{len(data['support_x'])} support points")
        ax.set(title=f"{name} (α = {panel['inner_lr']:g})", xlabel="x")
    axes[0].set_ylabel("y")
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=5, fontsize=7, bbox_to_anchor=(0.5, -0.01))
    figure.suptitle(f"Test task {data['task']} (A = {data['amplitude']:.2f}, φ = {data['phase']:.2f}), "
                    f"K = {SHOT}; {FRAMEWORK_NAMES[data['framework']]}, {data['iterations']:,} meta-iterations of "
                    f"{data['meta_batch']} tasks",
                    fontsize=10)
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    return figure


# ------------------------------------------------------------------------ loss after k steps

def adaptation_steps_data(iterations: int = 3000, tasks: int = 100, steps: int = 10) -> dict:
    from common.data.sinusoid import evaluation_tasks
    from common.evaluation import mean_ci95

    test = evaluation_tasks(SHOT)
    curves = {}
    for name in ("MAML", "first-order MAML", "Reptile (5 steps)", PRETRAINED):
        learner = trained(name, iterations)
        values = np.array([learner.adaptation_curve(test[i], steps) for i in range(tasks)])
        means, ci95 = zip(*(mean_ci95(values[:, k]) for k in range(steps + 1)))
        curves[name] = {"inner_lr": learner.inner_lr, "mse": means, "ci95": ci95}
    return {"framework": "torch", "iterations": iterations, "tasks": tasks, "steps": steps, "curves": curves}


def draw_adaptation_steps(data: dict):
    figure, ax = new_figure(height=3.8, width=6.5)
    steps = np.arange(data["steps"] + 1)
    for name, curve in data["curves"].items():
        mse, ci = np.array(curve["mse"]), np.array(curve["ci95"])
        ax.fill_between(steps, mse - ci, mse + ci, color=COLOURS[name], alpha=0.15, linewidth=0)
        ax.plot(steps, mse, marker="o", color=COLOURS[name], label=f"{name} (α = {curve['inner_lr']:g})")
    ax.axhline(BEST_WITHOUT_ADAPTATION, color=NEUTRAL, linestyle=":",
               label=f"best single function ({BEST_WITHOUT_ADAPTATION})")
    ax.set_xticks(steps)
    ax.set(xlabel=f"inner gradient steps on the {SHOT} support points", ylabel="query MSE (log scale)",
           yscale="log", title=f"{data['tasks']} fixed test tasks, K = {SHOT}; {FRAMEWORK_NAMES[data['framework']]}, "
                               f"{data['iterations']:,} meta-iterations each (95% bands)")
    from common.plotting import plain_ticks
    plain_ticks(ax, y=[0.2, 0.5, 1, 2, 5])
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.17), ncol=3, fontsize=7)
    figure.tight_layout()
    return figure


# -------------------------------------------------------------------------- Meta-SGD's rates

def metasgd_rates_data(iterations: int = 3000) -> dict:
    learner = trained("Meta-SGD", iterations)
    rates = learner.learned_inner_lrs()
    return {"framework": "torch", "iterations": iterations, "initial_range": [0.005, 0.1],
            "tensors": {name: {"shape": list(alpha.shape), "values": alpha.ravel().round(5),
                               "mean": float(alpha.mean()), "negative": float(np.mean(alpha < 0))}
                        for name, alpha in rates.items()}}


def draw_metasgd_rates(data: dict):
    figure, ax = new_figure(height=3.2)
    names = list(data["tensors"])
    rng = np.random.default_rng(0)  # horizontal jitter only
    low, high = data["initial_range"]
    ax.axhspan(low, high, color=OKABE_ITO["orange"], alpha=0.2, linewidth=0, label=f"initial range [{low}, {high}]")
    ax.axhline(0, color=OKABE_ITO["black"], linewidth=0.6)
    values = [np.array(data["tensors"][n]["values"]) for n in names]
    ax.boxplot(values, positions=range(len(names)), whis=(5, 95), showfliers=False, widths=0.5,
               medianprops={"color": OKABE_ITO["vermillion"]})
    for i, v in enumerate(values):
        ax.scatter(i + rng.uniform(-0.18, 0.18, v.size), v, s=3, alpha=0.35, color=OKABE_ITO["blue"])
    ax.set_xticks(range(len(names)),
                  [f"{n}\n{'×'.join(map(str, data['tensors'][n]['shape']))}, "
                   f"{100 * data['tensors'][n]['negative']:.0f}% < 0" for n in names], fontsize=7)
    ax.set(ylabel="learned inner rate α", title=f"Meta-SGD's α per parameter tensor ({FRAMEWORK_NAMES[data['framework']]}, K = {SHOT}, "
                                                 f"{data['iterations']:,} meta-iterations; boxes: 5-95%)")
    ax.legend(loc="upper right", fontsize=7)
    figure.tight_layout()
    return figure


# --------------------------------------------------------------------------- Omniglot curves

# The published MAML-family numbers are transductive (BatchNorm over the query set): those runs carry
# the plain name, a run normalised by the support set's statistics says so.
ALGORITHM_NAMES = {"maml-transductive": "MAML", "fomaml-transductive": "first-order MAML",
                   "maml": "MAML, support statistics", "fomaml": "first-order MAML, support statistics",
                   "metasgd": "Meta-SGD, support statistics", "metasgd-transductive": "Meta-SGD",
                   "reptile": "Reptile", "reptile-transductive": "Reptile, transductive"}
DASHES = {"torch": "-", "tf": "--", "keras": ":"}
ALGORITHM_COLOURS = {"MAML": OKABE_ITO["blue"], "first-order MAML": OKABE_ITO["vermillion"],
                     "Meta-SGD": OKABE_ITO["purple"], "Reptile": OKABE_ITO["green"],
                     "MAML, support statistics": OKABE_ITO["sky blue"],
                     "first-order MAML, support statistics": OKABE_ITO["orange"],
                     "Meta-SGD, support statistics": OKABE_ITO["black"], "Reptile, transductive": OKABE_ITO["yellow"]}


# The class splits the Omniglot runs use (common/schemes.py), as a panel's title names them: the
# characters split's runs validate and test on other characters, so they get panels of their own.
SPLIT_NAMES = {"omniglot": "", "omniglot-characters": ", characters split"}


def omniglot_curves_data() -> dict:
    """The committed Omniglot run the results table shows of each (algorithm, labelled deviations, way, shot,
    framework): its validation curve, test accuracy and the paper's number."""
    from common.results import (PUBLISHED, RESULTS_DIR, chosen_runs, deviation_labels, deviations, labels,
                                load_results, training_then_date)

    # A model tested again on other episodes (labelled test_query) has its curve drawn already.
    runs = sorted((r for r in load_results(RESULTS_DIR / "optimization")
                   if r["dataset"] in SPLIT_NAMES and labels(r) == deviations(r.get("options", {}))),
                  key=training_then_date)
    latest = chosen_runs(runs, lambda r: (r["way"], r["shot"], SPLIT_NAMES[r["dataset"]], r["algorithm"],
                                          deviation_labels(deviations(r.get("options", {}))), r["framework"]))
    # A model tested at another shot than it was validated at (Reptile: one model, tested 1- and
    # 5-shot) carries its training's curve: only the first test of that training owns it.
    validated_at = {}
    for result in runs:
        validated_at.setdefault(repr(result["history"]), result["shot"])
    panels = {}
    for (way, shot, split, algorithm, labels, framework), run in sorted(latest.items()):
        panel = panels.setdefault(f"{way}-way {shot}-shot{split}", {"runs": [], "papers": {}})
        # "[backbone strided]" as the tables write it; the legends, the longest text here, say it shorter
        name = f"{ALGORITHM_NAMES.get(algorithm, algorithm)}{labels.replace('backbone strided', 'stride 2')}"
        history = run["history"] if validated_at[repr(run["history"])] == shot else []
        panel["runs"].append({
            "name": name, "algorithm": algorithm, "framework": framework,
            "episode": [h["episode"] for h in history],
            "val_accuracy": [h["val_accuracy"] for h in history],
            "val_ci95": [h["val_ci95"] for h in history],
            "train_episodes": run["train_episodes"],
            "test_accuracy": run["accuracy"], "test_ci95": run["ci95"], "file": run["_file"].split("results/")[-1]})
        if (algorithm, run["dataset"], way, shot) in PUBLISHED:
            panel["papers"][ALGORITHM_NAMES.get(algorithm, algorithm)] = PUBLISHED[(algorithm, run["dataset"], way,
                                                                                      shot)][0]
    return {"panels": panels}


def draw_omniglot_curves(data: dict):
    panels = data["panels"]
    # One panel a row, its legend to its right: the legends are too wide to sit below side by side.
    # A panel is as tall as its legend needs (0.17 inch a run), and no less than 1.8 inches.
    heights = [max(1.8, 0.17 * len(panel["runs"])) for panel in panels.values()]
    figure, axes = new_figure(len(panels), 1, height=sum(heights) + 0.4, sharex=False,
                              gridspec_kw={"height_ratios": heights})
    for ax, (setting, panel) in zip(np.atleast_1d(axes), panels.items()):
        colours = ALGORITHM_COLOURS
        for run in panel["runs"]:
            colour = colours[ALGORITHM_NAMES.get(run["algorithm"], run["algorithm"])]
            label = (f"{run['name']} ({FRAMEWORK_NAMES[run['framework']]}): "
                     f"test {run['test_accuracy']:.1f} ± {run['test_ci95']:.1f}")
            if not run["episode"]:  # validated at another shot: its test point alone
                ax.errorbar(run["train_episodes"], run["test_accuracy"], yerr=run["test_ci95"], fmt="o",
                            color=colour, markersize=4, capsize=2, label=label + " (test)")
                continue
            episodes, accuracy, ci = (np.array(run[k]) for k in ("episode", "val_accuracy", "val_ci95"))
            ax.fill_between(episodes, accuracy - ci, accuracy + ci, color=colour, alpha=0.12, linewidth=0)
            ax.plot(episodes, accuracy, DASHES[run["framework"]], color=colour, label=label)
        # Runs span 250 to 100,000 meta-iterations: a log axis shows the early climb and the long tail
        # (labelled at powers of ten only: a panel of short runs would crowd its minor ticks' labels).
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        highest = max(panel["papers"].values(), default=None)
        for index, (algorithm, value) in enumerate(sorted(panel["papers"].items(), key=lambda item: -item[1])):
            # the highest label above its line, the others below; neighbours on alternate sides
            ax.axhline(value, color=colours[algorithm], linewidth=0.8, alpha=0.7)
            ax.text(ax.get_xlim()[1 - index % 2], value, f" {algorithm}, paper: {value} ", color=colours[algorithm],
                    fontsize=7, va="bottom" if value == highest else "top", ha="left" if index % 2 else "right")
        ax.set(ylabel="validation accuracy (%)", title=f"Omniglot {setting}")
        ax.set_ylim(top=100)  # the lowest curve sets the floor: 20-way runs start in the 70s
        ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=7)
    ax.set_xlabel("meta-iteration (log scale)")  # the last panel's; every panel has the same axis
    figure.suptitle("Validation accuracy during meta-training (100 fixed episodes, 95% bands; "
                    "thin lines: the papers' test accuracy)", fontsize=9)
    figure.tight_layout()
    return figure


# ------------------------------------------------------------------------------------ timing

def timing_data() -> dict:
    import json

    from common.results import RESULTS_DIR

    timing = json.loads((RESULTS_DIR / "optimization" / "timing.json").read_text())
    return {key: timing[key] for key in ("setting", "cores", "command", "machine", "rows") if key in timing}


def draw_timing(data: dict):
    figure, axes = new_figure(1, 2, height=3.0)
    frameworks = list(dict.fromkeys(row["framework"] for row in data["rows"]))
    x = np.arange(len(frameworks))
    for ax, key, label in ((axes[0], "seconds_per_meta_iteration", "seconds per meta-iteration"),
                           (axes[1], "peak_memory_mb", "peak memory above rest (MB)")):
        for offset, order, hatch in ((-0.2, "second", None), (0.2, "first", "//")):
            values = [next((r[key] for r in data["rows"] if r["framework"] == f and r["order"] == order), np.nan)
                      for f in frameworks]
            colours = [FRAMEWORK_COLOURS.get(f, NEUTRAL) for f in frameworks]
            ax.bar(x + offset, values, 0.38, color=colours, hatch=hatch, edgecolor="white" if hatch else None,
                   alpha=1.0 if order == "second" else 0.55, label=f"{order} order")
            for px, value in zip(x + offset, values):
                if np.isfinite(value):
                    ax.text(px, value, f"{value:.2f}" if key.startswith("seconds") else f"{value:.0f}",
                            ha="center", va="bottom", fontsize=7)
        ax.set_xticks(x, [FRAMEWORK_NAMES.get(f, f"{f}\n(PyTorch)") for f in frameworks], fontsize=8)
        ax.set(ylabel=label)
        ax.set_ylim(top=1.15 * ax.get_ylim()[1])
    from matplotlib.patches import Patch
    axes[1].legend(handles=[Patch(color=NEUTRAL, label="second order"),
                            Patch(facecolor="#cccccc", hatch="//", edgecolor="#555555", label="first order")],
                   loc="upper right", fontsize=7)
    figure.suptitle(f"MAML, {data['setting']}, {data['cores']} CPU core", fontsize=10)
    figure.tight_layout()
    return figure


FIGURES = [
    # Training runs: the test recomputes a 5-iteration run of the same code (see common/plotting.py);
    # another thread count or CPU moves the float32 numbers a little.
    Figure("sinusoid_adaptation", sinusoid_adaptation_data, draw_sinusoid_adaptation, size={"iterations": 3000},
           check_size={"iterations": 5}, rtol=1e-3),
    Figure("adaptation_steps", adaptation_steps_data, draw_adaptation_steps, size={"iterations": 3000},
           check_size={"iterations": 5, "tasks": 10}, rtol=1e-3),
    Figure("metasgd_rates", metasgd_rates_data, draw_metasgd_rates, size={"iterations": 3000},
           check_size={"iterations": 5}, rtol=1e-3),
    Figure("omniglot_curves", omniglot_curves_data, draw_omniglot_curves, colours=128),  # 40 curves
    Figure("timing", timing_data, draw_timing),
]
