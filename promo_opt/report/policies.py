"""The report's policy-comparison section: a table and a bar chart (see ``evaluation/policies.py``)."""

from __future__ import annotations

import html

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def policy_comparison_figure(comparison: dict, objective: str):
    rows = pd.DataFrame(comparison["rows"])
    key = "incremental_conversions" if objective == "conversions" else "net_revenue"
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.45 * len(rows) + 1.2), sharey=True)
    y = np.arange(len(rows))[::-1]
    colors = ["#d62728" if p == "optimized" else "#4c72b0" for p in rows["policy"]]
    err = None
    if "ci_low" in rows and key == "incremental_conversions":
        err = np.vstack([rows[key] - rows["ci_low"], rows["ci_high"] - rows[key]])
    axes[0].barh(y, rows[key], xerr=err, color=colors, capsize=3)
    axes[0].set_yticks(y, rows["policy"])
    axes[0].set_xlabel(key.replace("_", " "))
    axes[1].barh(y, rows["spend"], color="#dd8452")
    axes[1].axvline(comparison["budget"], color="k", ls="--", lw=1, label="budget")
    axes[1].set_xlabel("spend")
    axes[1].legend(loc="lower right")
    for ax in axes:
        ax.axvline(0, color="k", lw=.5)
        ax.grid(axis="x", alpha=.3)
    fig.suptitle(f"Strategies at the same budget ({comparison['scored_by'].split(';')[0]})", fontsize=10)
    fig.tight_layout()
    return fig


def policy_comparison_section(comparison: dict, objective: str) -> list[str]:
    """HTML parts: heading, explanation, table, plot."""
    from promo_opt.report.html import _png, _table

    return ["<h2>Policy comparison at the same budget</h2>",
            f"<p>Scored by: {html.escape(comparison['scored_by'])}. Every strategy spends at most the budget "
            f"({comparison['budget']:,.0f}) by the model's expected spend. The <i>response model</i> targets the users "
            "most likely to convert, whether or not the promotion changes their mind.</p>",
            _table(comparison["rows"]), _png(policy_comparison_figure(comparison, objective))]
