"""Draw episodes: one row per class, its K support images, then its Q query images.

``plot_episode`` draws one (the notebooks use it), ``draw_episodes`` several side by side (the
chapters' figures). ``python -m tools.viewer`` draws an episode of a data set into a PNG.
"""

from __future__ import annotations

import numpy as np

from common.episodes import Episode


def plot_episode(episode: Episode, class_names=None, title: str | None = None):
    """A matplotlib Figure of an image episode (support left of the line, queries right of it)."""
    return draw_episodes([(None, episode, class_names)], title)


def short_name(name: str) -> str:
    """'Anglo-Saxon_Futhorc/character08/rot090' -> 'Anglo-Saxon Futhorc 08, 90°' (other names as they are)."""
    parts = name.split("/")
    if len(parts) == 3 and parts[1].startswith("character") and parts[2].startswith("rot"):
        alphabet = parts[0].replace("_", " ").split(" (")[0]  # 'Inuktitut (Canadian ...)' -> 'Inuktitut'
        return f"{alphabet[:20]} {parts[1][9:]}, {int(parts[2][3:])}°"
    return name


def draw_episodes(panels, title: str | None = None):
    """Episodes side by side, each a grid with one row per label: its K support images, a red
    line, then its queries. ``panels`` is a list of (panel title or None, Episode, class names or None)."""
    import matplotlib.pyplot as plt

    layouts = []
    for _, episode, _ in panels:
        way = int(episode.support_y.max()) + 1
        layouts.append((way, len(episode.support_y) // way, len(episode.query_y) // way))
    way = max(layout[0] for layout in layouts)
    label_columns = 3.4 if any(names is not None for _, _, names in panels) else 0.5  # room for the labels
    widths = [label_columns + shot + query for _, shot, query in layouts]
    cell = min(0.6, 6.9 / sum(widths))  # inches per image: the whole figure fits a README's width
    top = 0.3 + 0.3 * (title is not None)  # inches above the grid
    figure = plt.figure(figsize=(cell * sum(widths), cell * way + top))
    subfigures = np.atleast_1d(figure.subfigures(1, len(panels), width_ratios=widths, wspace=0))
    for subfigure, (panel_title, episode, names), (panel_way, shot, query), width in zip(
            subfigures, panels, layouts, widths):
        columns = shot + query
        axes = subfigure.subplots(way, columns, squeeze=False, gridspec_kw=dict(
            left=label_columns / width, right=0.98, bottom=0.02, top=1 - top / (cell * way + top),
            wspace=0.08, hspace=0.08))
        for label in range(way):
            # Episodes are ordered class by class, so class `label` owns a contiguous block of rows.
            images = list(episode.support_x[label * shot:(label + 1) * shot])
            images += list(episode.query_x[label * query:(label + 1) * query])
            for column, ax in enumerate(axes[label]):
                ax.set_xticks([])
                ax.set_yticks([])
                ax.grid(False)
                if label >= panel_way or column >= len(images):
                    ax.axis("off")
                    continue
                image = images[column]
                grey = image.shape[-1] == 1
                ax.imshow(np.squeeze(image, -1) if grey else image, cmap="gray" if grey else None,
                          vmin=0, vmax=1)
                for spine in ax.spines.values():
                    spine.set(visible=True, color="#bbbbbb", linewidth=0.5)
                if column == shot:
                    ax.spines["left"].set(color="#D55E00", linewidth=3)  # support | query
            text = str(label) if names is None else f"label {label}\n{short_name(names[label])}"
            axes[label, 0].set_ylabel(text, rotation=0, ha="right", va="center", fontsize=7, labelpad=4)
        axes[0, 0].set_title("support" if shot == 1 else f"support ({shot} per label)", fontsize=7,
                             loc="center" if shot == 1 else "left")
        if query:
            axes[0, shot].set_title(f"  queries ({query} per label)", fontsize=7, loc="left")
        if panel_title:  # left of "support", above the labels
            axes[0, 0].annotate(panel_title, xy=(0, 1), xycoords="axes fraction", xytext=(-6, 3),
                                textcoords="offset points", ha="right", va="bottom", fontsize=9,
                                fontweight="bold")
    if title:
        figure.suptitle(title, fontsize=10, y=0.995)
    return figure
