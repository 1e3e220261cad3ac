"""This chapter's reproduction table, one protocol per training run:

    python -m chapters.model_based.reproduce                          # what is measured, beside the papers
    python -m chapters.model_based.reproduce --framework tf --run mann-omniglot
    python -m chapters.model_based.reproduce --framework keras --next # the first protocol not yet measured

MANN and its LSTM baseline (Santoro et al. 2016, Table 1): online Omniglot episodes of 5 classes x
10 drawings at 20x20, one-hot labels one step late, the paper's 1,200 training and 423 test
characters (the Vinyals trainval / test split, rotations as classes), training images randomly
shifted and rotated, batches of 16 episodes, RMSProp 1e-4 for the paper's 100,000 episodes
(counted here as updates), 600 fixed test episodes scored at each presentation of a class. A run
resumes from its checkpoint: run the same line again to continue it. After the status table, the
accuracy per presentation of the measured runs is set beside the paper's Table 1.

The runner is ``common/reproduce.py``; each protocol's command is its script's own (see the
docstring of ``mann.py`` for what the paper states and what we chose where it is silent).
"""

import sys

from common.cli import run
from common.reproduce import Protocol, main as reproduce_main
from common.results import RESULTS_DIR, load_results, presentations_table

QUIET = ("--eval-every", "1000", "--val-episodes", "100", "--quiet")


def mann(model: str) -> Protocol:
    """Santoro et al.'s Omniglot protocol for ``--model mann`` or ``--model lstm``."""
    return Protocol(f"{model}-omniglot", "chapters.model_based.mann",
                    ("--model", model, "--episodes", "100000", *QUIET),
                    {(model, "omniglot", 5, 10): ()})


def snail(way: int, shot: int) -> Protocol:
    """SNAIL (Mishra et al. 2018) on Omniglot, trained in the test's N-way K-shot setting with 5
    queries per class, Adam 1e-3 halved every 5,000 episodes, for 20,000 episodes (our budget: the
    paper gives none); tested on the book's 600 fixed episodes, 15 queries per class, each query
    scored as the last step of its own sequence."""
    return Protocol(f"snail-{way}w{shot}s", "chapters.model_based.snail",
                    ("--way", str(way), "--shot", str(shot), "--query", "5", "--episodes", "20000",
                     "--decay-every", "5000", "--eval-every", "1000", "--quiet"),
                    {("snail", "omniglot", way, shot): ()})


def metanet(way: int, episodes: int, fast_layers: int | None = 2) -> Protocol:
    """Meta Networks (Munkhdalai & Yu 2017) on Omniglot, N-way 1-shot, 5 queries per class, Adam 1e-3,
    ``episodes`` episodes (our budget, what one core does in about an hour at 5-way and two at
    20-way with two fast layers: the paper gives none); tested on the book's 600 fixed episodes, 15
    queries per class. With ``fast_layers`` 2 (a labelled deviation), fast weights in b's two dense
    layers and u's key layer only; with None, every layer fast as in the paper, whose episode costs
    about 20 times more CPU (protocol ``metanet-full-...``)."""
    name, layers = (f"metanet-{way}w1s", ("--fast-layers", str(fast_layers))) if fast_layers else (f"metanet-full-{way}w1s", ())
    return Protocol(name, "chapters.model_based.metanet",
                    ("--way", str(way), "--shot", "1", "--query", "5", *layers, "--episodes", str(episodes),
                     "--eval-every", "1000", "--quiet"),
                    {("metanet", "omniglot", way, 1): ()}, options={"fast_layers": fast_layers} if fast_layers else {})


PROTOCOLS = [mann("mann"), mann("lstm"), *(snail(way, shot) for way in (5, 20) for shot in (1, 5)),
             metanet(5, 30000), metanet(20, 20000), metanet(5, 30000, None), metanet(20, 20000, None)]


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    reproduce_main(PROTOCOLS, "model_based", argv)
    if not {"--run", "--next", "--commands", "-h", "--help"} & set(argv):  # the status view
        folder = RESULTS_DIR / "model_based"
        print(presentations_table(load_results(folder)) if folder.exists() else "", end="")


if __name__ == "__main__":
    run(main)
