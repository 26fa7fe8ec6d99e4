"""One look for every plot of the reports and the web app: arm colours, readable numeric axes.

``ARM_COLORS`` is the list the web app's chart uses (``service/web/chart.js``): an arm's colour is
its position in the campaign config (control first), so an arm looks the same in every picture.
``readable_axes`` puts thousands separators on numeric tick labels and marks the axes so that
``fit_ticks`` (called when a figure is saved) thins the ticks until no two labels overlap.
"""

from __future__ import annotations

from matplotlib.ticker import FuncFormatter, MaxNLocator

ARM_COLORS = ("#6b6b6b", "#1f77b4", "#d95f02", "#1b9e77", "#7570b3", "#e7298a", "#66a61e", "#a6761d")
MAX_TICKS = 9


def arm_color(index: int) -> str:
    """The colour of the arm at ``index`` in the campaign's arm list (0 = control)."""
    return ARM_COLORS[index % len(ARM_COLORS)]


def number_label(x: float, _pos=None) -> str:
    """A tick label: thousands separators from 1,000 up and for whole numbers, else 3 significant digits."""
    if x == 0:
        return "0"  # never "-0"
    if abs(x) >= 1000 or float(x).is_integer():
        return f"{x:,.0f}"
    return f"{x:,.3g}"


def readable_axes(ax, x: bool = True, y: bool = True) -> None:
    """Thousands separators on the numeric axis/axes; their ticks are thinned by ``fit_ticks`` when saved."""
    for on, axis in ((x, ax.xaxis), (y, ax.yaxis)):
        if on:
            axis.set_major_formatter(FuncFormatter(number_label))
            axis.set_major_locator(MaxNLocator(nbins=MAX_TICKS, steps=[1, 2, 2.5, 5, 10]))
            axis._promo_fit = True


def shown_labels(axis) -> list:
    """The tick labels drawn: ticks inside the axis' view (matplotlib also keeps some just outside)."""
    lo, hi = sorted(axis.get_view_interval())
    eps = (hi - lo) * 1e-9
    return [t.label1 for t in axis.get_major_ticks()
            if lo - eps <= t.get_loc() <= hi + eps and t.label1.get_visible() and t.label1.get_text()]


def _overlap(labels, renderer, vertical: bool) -> bool:
    boxes = sorted((t.get_window_extent(renderer) for t in labels),
                   key=lambda b: b.y0 if vertical else b.x0)
    gap = 2.0  # pixels between neighbours
    if vertical:
        return any(a.y1 + gap > b.y0 for a, b in zip(boxes, boxes[1:]))
    return any(a.x1 + gap > b.x0 for a, b in zip(boxes, boxes[1:]))


def fit_ticks(fig) -> None:
    """Fewer ticks on each axis marked by ``readable_axes`` until no two tick labels overlap."""
    for ax in fig.axes:
        for axis, vertical in ((ax.xaxis, False), (ax.yaxis, True)):
            if not getattr(axis, "_promo_fit", False):
                continue
            for nbins in range(MAX_TICKS, 1, -1):
                axis.set_major_locator(MaxNLocator(nbins=nbins, steps=[1, 2, 2.5, 5, 10]))
                fig.canvas.draw()
                if not _overlap(shown_labels(axis), fig.canvas.get_renderer(), vertical):
                    break
