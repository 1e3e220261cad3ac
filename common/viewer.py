"""Look at an episode: one row per class, its K support images, then its Q query images.

    python -m common.viewer --dataset omniglot --way 5 --shot 1 --query 5 --out episode.png

This is the first thing to run in the book: it shows what "5-way 1-shot" means on real data.
"""

from __future__ import annotations

import argparse

import numpy as np

from common.episodes import Episode


def plot_episode(episode: Episode, class_names=None, title: str | None = None):
    """A matplotlib Figure of an image episode (support left of the line, queries right of it)."""
    import matplotlib.pyplot as plt

    way = int(episode.support_y.max()) + 1
    shot, query = len(episode.support_y) // way, len(episode.query_y) // way
    columns = shot + query
    figure, axes = plt.subplots(way, columns, figsize=(1.1 * columns + 1.6, 1.1 * way + 0.6),
                                squeeze=False)
    for label in range(way):
        # Episodes are ordered class by class, so class `label` owns a contiguous block of rows.
        images = list(episode.support_x[label * shot:(label + 1) * shot])
        images += list(episode.query_x[label * query:(label + 1) * query])
        for column, image in enumerate(images):
            ax = axes[label, column]
            cmap = "gray" if image.shape[-1] == 1 else None
            ax.imshow(np.squeeze(image, -1) if image.shape[-1] == 1 else image, cmap=cmap, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if column == shot and shot < columns:
                ax.spines["left"].set(color="tab:red", linewidth=3)
        name = class_names[label] if class_names is not None else ""
        axes[label, 0].set_ylabel(f"{label}\n{name}", rotation=0, ha="right", va="center", fontsize=7)
    axes[0, 0].set_title("support", fontsize=8, loc="left")
    if query:
        axes[0, shot].set_title("query", fontsize=8, loc="left")
    if title:
        figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    return figure


def main(argv=None) -> None:
    from common.data import load_dataset
    from common.episodes import EpisodeSampler

    parser = argparse.ArgumentParser(prog="python -m common.viewer", description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="omniglot")
    parser.add_argument("--split", default="train")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--way", type=int, default=5)
    parser.add_argument("--shot", type=int, default=1)
    parser.add_argument("--query", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--index", type=int, default=0, help="which episode of the seed to draw")
    parser.add_argument("--out", default="episode.png")
    args = parser.parse_args(argv)

    dataset = load_dataset(args.dataset, args.split, args.data_dir)
    sampler = EpisodeSampler(dataset, args.way, args.shot, args.query, seed=args.seed)
    episode = sampler.episode(args.index)
    names = [dataset.class_names[c] for c in sampler.classes_of(args.index)]
    print(f"{dataset}")
    print(f"episode {args.index} of seed {args.seed}: {args.way}-way {args.shot}-shot {args.query}-query")
    print(f"  support_x {episode.support_x.shape} {episode.support_x.dtype}, support_y {episode.support_y.tolist()}")
    print(f"  query_x   {episode.query_x.shape} {episode.query_x.dtype}, query_y   {episode.query_y.tolist()}")
    for label, name in enumerate(names):
        print(f"  label {label} = {name}")
    title = f"{args.dataset}/{args.split}: {args.way}-way {args.shot}-shot, episode {args.index}"
    plot_episode(episode, names, title).savefig(args.out, dpi=120)
    print(f"saved {args.out}")


if __name__ == "__main__":
    from common.cli import run

    run(main)
