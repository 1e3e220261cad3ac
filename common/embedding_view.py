"""An episode's embeddings in two dimensions: the queries, the prototypes, and which queries are right.

What a metric learner does to an episode is easiest to see in a picture: the query embeddings,
coloured by their class, the prototypes (the mean support embedding of each class, Snell et al.
2017, Eq. 1) as stars, and the queries whose nearest prototype is another class's circled. The
embeddings live in 64 or more dimensions; the picture projects them onto their two principal
directions and says how much of the variance the projection keeps.

Any encoder on any data: the functions take embeddings as NumPy arrays. The metric chapter draws
Omniglot through a Conv-4, the applications chapter FewRel sentences through a Proto-CNN.
"""

from __future__ import annotations

import numpy as np

from common.plotting import CYCLE, new_figure


def pca_2d(points: np.ndarray, *others: np.ndarray):
    """Project onto the two principal directions of ``points``; ``others`` through the same
    projection. Returns the projections and the fraction of the variance the two directions keep."""
    mean = points.mean(axis=0)
    _, singular, directions = np.linalg.svd(points - mean, full_matrices=False)
    directions = directions[:2] * np.sign(directions[:2, :1] + 1e-12)  # a fixed sign for each direction
    explained = float((singular[:2] ** 2).sum() / (singular ** 2).sum())
    return [(x - mean) @ directions.T for x in (points, *others)], explained


def prototype_view(support: np.ndarray, support_y: np.ndarray, query: np.ndarray, query_y: np.ndarray,
                   way: int) -> dict:
    """The queries and prototypes of one episode's embeddings in 2-D, and which queries are right
    (nearest prototype in all the embedding's dimensions, as ProtoNet decides)."""
    prototypes = np.stack([support[support_y == k].mean(axis=0) for k in range(way)])
    distances = ((query[:, None, :] - prototypes[None]) ** 2).sum(axis=-1)
    right = distances.argmin(axis=1) == query_y
    (query_2d, prototypes_2d), explained = pca_2d(query, prototypes)
    return {"query_2d": query_2d.round(4), "prototypes_2d": prototypes_2d.round(4), "right": right,
            "accuracy": 100 * float(right.mean()), "explained": explained}


def draw_embeddings(panels: dict, query_y, class_names: list[str], title: str, height: float = 3.5,
                    legend_below: bool = False):
    """One panel per view of :func:`prototype_view` (``{panel title: view}``), side by side.
    Long class names go in a legend below the panels (``legend_below``), short ones in the last panel."""
    figure, axes = new_figure(1, len(panels), height=height)
    labels = np.array(query_y)
    for ax, (name, view) in zip(np.atleast_1d(axes), panels.items()):
        query, prototypes, right = (np.array(view[k]) for k in ("query_2d", "prototypes_2d", "right"))
        for k, class_name in enumerate(class_names):
            ax.scatter(*query[labels == k].T, color=CYCLE[k], s=14, alpha=0.75, label=class_name)
            ax.scatter(*prototypes[k], color=CYCLE[k], marker="*", s=260, edgecolors="black", linewidths=0.8,
                       zorder=4)
        ax.scatter(*query[~right].T, s=70, facecolors="none", edgecolors="black", linewidths=0.8,
                   label="misclassified")
        ax.set_title(f"{name}: {view['accuracy']:.0f}% of the queries right\n"
                     f"(the 2-D view keeps {100 * view['explained']:.0f}% of the variance)", fontsize=9)
        ax.set(xlabel="first principal direction", ylabel="second principal direction")
        ax.set_xticklabels([])
        ax.set_yticklabels([])
    last = np.atleast_1d(axes)[-1]
    if legend_below:
        figure.legend(*last.get_legend_handles_labels(), loc="lower center", ncol=3, fontsize=7, markerscale=0.8)
    else:
        last.legend(loc="best", fontsize=7, markerscale=0.8)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout(rect=(0, 0.13, 1, 1) if legend_below else None)
    return figure
