"""This chapter's reproduction table, one protocol per training run: Omniglot (the Vinyals split
unless a protocol is named ``-characters``, 28x28, 600 fixed test tasks with 15 queries per class)
and sinusoid regression (600 fixed test tasks with 100 query points):

    python -m chapters.optimization.reproduce                            # what is measured, beside the papers
    python -m chapters.optimization.reproduce --framework tf --run maml-5w1s
    python -m chapters.optimization.reproduce --framework keras --next   # the first protocol not yet measured

Omniglot, as in the scripts' docstrings: MAML and first-order MAML with Finn et al.'s settings and
the network and BatchNorm of their released code (``--backbone strided``: stride-2 convolutions
instead of max-pooling; ``--transductive``, the setting of the published numbers), and MAML and
first-order MAML 5-way 1-shot also with the max-pool network of the paper's text
(``maml-5w1s-maxpool``, ``fomaml-5w1s-maxpool``); Meta-SGD with
MAML's settings, network, batch norm and learned rates (Li et al. follow MAML's protocol), 5-way
1-shot also on the max-pool network (``metasgd-5w1s-maxpool``); first-order MAML and Meta-SGD
5-way 1-shot also on the papers' own class split (``fomaml-5w1s-characters``,
``metasgd-5w1s-characters``, ``metasgd-5w1s-maxpool-characters``: 1,200 characters of any
alphabets for training, ``--scheme characters``); Reptile as
Nichol et al.'s released code (the same stride-2 network; 10 shots per class in training, inner
mini-batches of Adam steps, one model tested 1- and 5-shot, not transductive; see ``reptile.py``). Sinusoids: Finn et al.'s protocol, 70,000 meta-iterations, for K = 5, 10, 20.
The runner is ``common/reproduce.py``.
"""

from common.cli import run
from common.reproduce import Protocol, main
from common.schemes import Scheme

QUIET = ("--eval-every", "250", "--val-episodes", "100", "--quiet")
STRIDED = ("--backbone", "strided")  # the Conv-4 of Finn et al.'s released Omniglot code
FIVE_WAY = ("--meta-batch", "32", "--inner-lr", "0.4", "--inner-steps", "1", "--test-inner-steps", "3")
TWENTY_WAY = ("--meta-batch", "16", "--inner-lr", "0.1", "--inner-steps", "5", "--test-inner-steps", "5")


def network(backbone: str) -> tuple[str, tuple, dict]:
    """(suffix of the protocol's name, its options, the options its results record) for a Conv-4:
    the stride-2 network of the released code is the protocols' own, any other a named variant."""
    if backbone == "strided":
        return "", STRIDED, {"backbone": "strided"}
    return f"-{backbone}", (), {}


def classes(scheme: str) -> tuple[str, tuple, str]:
    """(suffix of the protocol's name, its options, the results' data set) for a class split of
    Omniglot: the Vinyals split files, every chapter's, or ``characters``, the papers' own
    (``common/schemes.py``: 1,200 characters of any alphabets for training)."""
    dataset = Scheme(scheme).dataset_label("omniglot")  # the name the training script gives its results
    if scheme == "vinyals":
        return "", (), dataset
    return f"-{scheme}", ("--scheme", scheme), dataset


def maml(way: int, shot: int, first_order: bool = False, transductive: bool = True,
         backbone: str = "strided", scheme: str = "vinyals") -> Protocol:
    """The published (transductive) protocol; ``transductive=False``: the same run with each query
    normalised by the support set's statistics, the chapter's recommendation (no published number);
    ``backbone="maxpool"``: the network the paper's text describes, beside that of the released code;
    ``scheme="characters"``: the papers' class split instead of the Vinyals split files."""
    name, (suffix, backbone_options, recorded) = "fomaml" if first_order else "maml", network(backbone)
    split_suffix, split_options, dataset = classes(scheme)
    return Protocol(f"{name}-{way}w{shot}s" + ("" if transductive else "-support-statistics") + suffix + split_suffix,
                    "chapters.optimization.maml",
                    ("--way", str(way), "--shot", str(shot), *(FIVE_WAY if way == 5 else TWENTY_WAY),
                     *(("--first-order",) if first_order else ()), *backbone_options,
                     *(("--transductive",) if transductive else ()), *split_options, "--episodes", "60000", *QUIET),
                    {(name + ("-transductive" if transductive else ""), dataset, way, shot): ()},
                    options=recorded,
                    unpublished="" if transductive else "the published numbers are transductive; this is "
                                                        "the chapter's recommended setting beside them")


def metasgd(way: int, shot: int, backbone: str = "strided", scheme: str = "vinyals") -> Protocol:
    (suffix, backbone_options, recorded), (split_suffix, split_options, dataset) = network(backbone), classes(scheme)
    return Protocol(f"metasgd-{way}w{shot}s{suffix}{split_suffix}", "chapters.optimization.metasgd",
                    ("--way", str(way), "--shot", str(shot), "--meta-batch", "32" if way == 5 else "16",
                     *backbone_options, "--transductive", *split_options, "--episodes", "60000", *QUIET),
                    {("metasgd-transductive", dataset, way, shot): ()}, options=recorded)


def reptile(way: int) -> Protocol:
    return Protocol(f"reptile-{way}w", "chapters.optimization.reptile",
                    ("--way", str(way), "--shot", "10", "--inner-steps", "5" if way == 5 else "10",
                     "--inner-batch", "10" if way == 5 else "20", "--inner-optimizer", "adam", "--inner-lr", "0.001",
                     "--test-inner-steps", "50", *STRIDED, "--episodes", "100000", "--eval-every", "2500",
                     "--val-episodes", "100", "--quiet"),
                    {("reptile", "omniglot", way, shot): ("--test-shot", str(shot)) for shot in (1, 5)},
                    options={"inner_optimizer": "adam", "backbone": "strided"})


def sinusoid(algorithm: str, shot: int) -> Protocol:
    return Protocol(f"{algorithm}-sinusoid-{shot}", "chapters.optimization.sinusoid",
                    ("--algorithm", algorithm, "--shot", str(shot), "--iterations", "70000", "--log-every", "5000"),
                    {(algorithm, "sinusoid", 1, shot): ()})


PROTOCOLS = [*(sinusoid(algorithm, shot) for algorithm in ("maml", "metasgd") for shot in (5, 10, 20)),
             *(maml(way, shot) for way in (5, 20) for shot in (1, 5)),
             maml(5, 1, transductive=False), maml(5, 1, backbone="maxpool"), maml(5, 1, scheme="characters"),
             *(maml(way, shot, first_order=True) for way in (5, 20) for shot in (1, 5)),
             maml(5, 1, first_order=True, backbone="maxpool"), maml(5, 1, first_order=True, scheme="characters"),
             *(metasgd(way, shot) for way in (5, 20) for shot in (1, 5)), metasgd(5, 1, backbone="maxpool"),
             metasgd(5, 1, scheme="characters"), metasgd(5, 1, backbone="maxpool", scheme="characters"),
             reptile(5), reptile(20)]

if __name__ == "__main__":
    run(main, PROTOCOLS, "optimization")
