"""Look at an episode: one row per class, its K support images, then its Q query images.

    python -m tools.viewer --dataset omniglot --way 5 --shot 1 --query 5 --out episode.png

This is the first thing to run in the book: it shows what "5-way 1-shot" means on real data.
The drawing is ``common.viewer.plot_episode``.
"""

from __future__ import annotations

import argparse

from common.cli import run
from common.viewer import plot_episode


def main(argv=None) -> None:
    from common.data import load_dataset
    from common.episodes import EpisodeSampler

    parser = argparse.ArgumentParser(prog="python -m tools.viewer", description=__doc__.split("\n")[0])
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
    plot_episode(episode, names, title).savefig(args.out, dpi=120, bbox_inches="tight")
    print(f"saved {args.out}")



if __name__ == "__main__":
    run(main)
