"""The HTML report's plots: thousands separators, no overlapping tick labels, one colour per arm."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

from promo_opt.report.html import budget_curve_figure, png_bytes  # noqa: E402
from promo_opt.report.policies import budget_band_figure  # noqa: E402
from promo_opt.report.selection import qini_figure  # noqa: E402
from promo_opt.report.style import ARM_COLORS, arm_color, fit_ticks, number_label, shown_labels  # noqa: E402


def _assert_readable(fig, axis):
    renderer = fig.canvas.get_renderer()
    labels = shown_labels(axis)
    boxes = sorted((t.get_window_extent(renderer) for t in labels), key=lambda b: b.x0)
    assert len(boxes) >= 3
    assert all(a.x1 < b.x0 for a, b in zip(boxes, boxes[1:])), [t.get_text() for t in labels]
    return [t.get_text() for t in labels]


@pytest.mark.parametrize("top", [1_500.0, 150_000.0, 12_345_678.0, 9.87e9])
def test_budget_axis_has_separators_and_no_overlap(top):
    spend = np.linspace(0, top, 40)
    curve = pd.DataFrame({"spend": spend, "incremental_conversions": np.sqrt(spend)})
    fig = budget_curve_figure(curve, budget=top * 0.6, chosen=float(np.sqrt(top * 0.6)))
    fig.set_size_inches(4, 3)  # narrow: many long labels would collide without thinning
    fit_ticks(fig)
    texts = _assert_readable(fig, fig.axes[0].xaxis)
    big = [t for t in texts if t not in ("0",)]
    assert all("," in t for t in big if float(t.replace(",", "")) >= 1000), texts
    # the labels are the tick values themselves (no offset / scientific multiplier hiding digits)
    assert fig.axes[0].xaxis.get_offset_text().get_text() == ""
    values = [float(t.replace(",", "")) for t in texts]
    assert values == sorted(values) and values[-1] <= top * 1.05
    png = png_bytes(fig)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_old_bug_is_gone():
    """Budgets 100,000-150,000 on a default-size figure: the labels were printed run together."""
    b = np.linspace(100_000, 150_000, 30)
    bands = [{"budget": x, "incremental_conversions": x / 1e3, "incremental_conversions_ci_low": x / 1.1e3,
              "incremental_conversions_ci_high": x / 0.9e3} for x in b]
    fig = budget_band_figure(bands, 125_000)
    fit_ticks(fig)
    texts = _assert_readable(fig, fig.axes[0].xaxis)
    assert "125,000" in texts or "120,000" in texts, texts


def test_number_label():
    assert number_label(0.0) == "0" and number_label(-0.0) == "0"
    assert number_label(1234567.0) == "1,234,567" and number_label(-2500.0) == "-2,500"
    assert number_label(12.0) == "12" and number_label(0.125) == "0.125" and number_label(2.5) == "2.5"


def test_one_colour_per_arm():
    curves = {a: {"fraction": [0, .5, 1], "qini": [0, 3 + i, 5]} for i, a in enumerate(["pct5", "pct10", "pct20"])}
    fig = qini_figure(curves)
    solid = [ln for ln in fig.axes[0].lines if ln.get_linestyle() == "-" and ln.get_label() in curves]
    assert [matplotlib.colors.to_hex(ln.get_color()) for ln in solid] == [ARM_COLORS[1], ARM_COLORS[2], ARM_COLORS[3]]
    assert arm_color(0) == ARM_COLORS[0] and arm_color(len(ARM_COLORS)) == ARM_COLORS[0]


def test_app_and_report_share_the_palette():
    from importlib import resources

    js = (resources.files("promo_opt.service") / "web" / "chart.js").read_text()
    assert "export const ARM_COLORS = [" + ", ".join(f'"{c}"' for c in ARM_COLORS) + "];" in js
