"""This chapter's reproduction table on Omniglot (Vinyals split, 28x28, rotations as classes; 600
fixed test episodes, 15 queries per class), one protocol per training run:

    python -m chapters.metric.reproduce                            # what is measured, beside the papers
    python -m chapters.metric.reproduce --framework tf --run protonet-1shot
    python -m chapters.metric.reproduce --framework keras --next   # the first protocol not yet measured

ProtoNet and Siamese networks train 60-way with 5 queries per class (Snell et al.) and one
trained model is tested 5-way and 20-way; Matching Networks train in the test setting (Vinyals et
al.: "test and train conditions must match"), with Eq. 2 as printed (it stalls far short of the
paper: section 3 of the chapter) and with three labelled deviations. Adam 1e-3, halved every
2,000 episodes, throughout. ProtoNet and Siamese networks train for the same 8,000 episodes
(ProtoNet was within 0.4 points of the paper by then), so that the two differ only in the loss
and the scoring rule. Matching Networks train 20,000 5-way episodes (80 or 100 images each) and
8,000 20-way ones (320 or 400 images, about as many images in all as ProtoNet's 8,000 60-way
episodes); Vinyals et al. give no number.
The runner is ``common/reproduce.py``; each protocol's command is its script's own (see their
docstrings for the papers' protocols, and mini-ImageNet, which needs data that is not offline).
"""

from common.cli import run
from common.reproduce import Protocol, main

EVERY = ("--eval-every", "500", "--decay-every", "2000", "--quiet")


def sixty_way(algorithm: str, shot: int, episodes: int) -> Protocol:
    """Trained 60-way K-shot with 5 queries per class, tested 5- and 20-way K-shot."""
    return Protocol(f"{algorithm}-{shot}shot", f"chapters.metric.{algorithm}",
                    ("--way", "60", "--shot", str(shot), "--query", "5", "--test-shot", str(shot),
                     "--test-query", "15", "--episodes", str(episodes), *EVERY),
                    {(algorithm, "omniglot", way, shot): ("--test-way", str(way)) for way in (5, 20)})


# Matching Networks' variants: Eq. 2 as printed, and three labelled deviations from it (see
# ``chapters/metric/matching.py``). Each names its protocols (matching-printed-5w1s,
# matching-5w1s, ...), adds its flags to the command, and gives the options a run records (none
# for Eq. 2 as printed, which a run of a deviation never fills: ``common/reproduce.py``).
MATCHING_VARIANTS = {
    "printed": ("matching-printed", (), {}),
    "cosine_scale": ("matching", ("--cosine-scale", "10"), {"cosine_scale": 10.0}),
    "squared_euclidean": ("matching-euclidean", ("--distance", "squared_euclidean"),
                          {"distance": "squared_euclidean"}),
    "cosine_times_query_norm": ("matching-querynorm", ("--distance", "cosine_times_query_norm"),
                                {"distance": "cosine_times_query_norm"}),
}


def matching(way: int, shot: int, variant: str = "cosine_scale") -> Protocol:
    """Trained and tested N-way K-shot with 15 queries per class, with Eq. 2 as printed (bare
    cosines, ``matching-printed-*``) or one of three labelled deviations: the cosines scaled by
    10 (``matching-*``), the squared Euclidean distance in their place (``matching-euclidean-*``),
    or the cosines times the query's length (``matching-querynorm-*``)."""
    prefix, flags, options = MATCHING_VARIANTS[variant]
    return Protocol(f"{prefix}-{way}w{shot}s", "chapters.metric.matching",
                    ("--way", str(way), "--shot", str(shot), "--query", "15",
                     "--episodes", "20000" if way == 5 else "8000", *flags, *EVERY),
                    {("matching", "omniglot", way, shot): ()}, options=options)


PROTOCOLS = [sixty_way("protonet", 1, 8000), sixty_way("protonet", 5, 8000),
             *(matching(way, shot, "printed") for way in (5, 20) for shot in (1, 5)),
             *(matching(way, shot) for way in (5, 20) for shot in (1, 5)),
             *(matching(way, shot, "squared_euclidean") for way in (5, 20) for shot in (1, 5)),
             *(matching(way, shot, "cosine_times_query_norm") for way in (5, 20) for shot in (1, 5)),
             sixty_way("siamese", 1, 8000), sixty_way("siamese", 5, 8000)]

if __name__ == "__main__":
    run(main, PROTOCOLS, "metric")
