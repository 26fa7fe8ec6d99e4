"""The report's policy-comparison section: a table and a bar chart (see ``evaluation/policies.py``)."""

from __future__ import annotations

import html

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from promo_opt.report.style import readable_axes


def policy_comparison_figure(comparison: dict, objective: str):
    rows = pd.DataFrame(comparison["rows"])
    key = "incremental_conversions" if objective == "conversions" else "net_revenue"
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.45 * len(rows) + 1.2), sharey=True)
    y = np.arange(len(rows))[::-1]
    colors = ["#d62728" if p == "optimized" else "#55a868" if p.startswith("rule: ") else "#4c72b0"
              for p in rows["policy"]]
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
        readable_axes(ax, y=False)
    fig.suptitle(f"Strategies at the same budget ({comparison['scored_by'].split(';')[0]})", fontsize=10)
    fig.tight_layout()
    return fig


def budget_band_figure(bands: list[dict], budget: float):
    b = pd.DataFrame(bands)
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.fill_between(b["budget"], b["incremental_conversions_ci_low"], b["incremental_conversions_ci_high"],
                    color="#1f77b4", alpha=.2, label="95% interval (doubly robust, held-out)")
    ax.plot(b["budget"], b["incremental_conversions"], marker=".", color="#1f77b4", label="estimate")
    ax.axvline(budget, color="#d62728", ls="--", lw=1, label=f"budget {budget:,.0f}")
    ax.axhline(0, color="k", lw=.5)
    ax.set_xlabel("budget")
    ax.set_ylabel("incremental conversions")
    ax.set_title("Budget curve with confidence band (policies rebuilt on held-out folds)")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=.3)
    readable_axes(ax)
    return fig


def policy_comparison_section(comparison: dict, objective: str) -> list[str]:
    """HTML parts: heading, explanation, table, plot; then the budget curve's confidence band."""
    from promo_opt.report.html import _png, _table

    band = []
    if comparison.get("budget_bands"):
        band = ["<h2>Budget curve with confidence band</h2>",
                _png(budget_band_figure(comparison["budget_bands"], comparison["budget"])),
                "<p class='note'>For each budget, the optimal policy is rebuilt on the training campaign from "
                "out-of-fold predictions and its incremental conversions estimated by doubly robust off-policy "
                "evaluation on those randomized rows (scaled to the candidates); the band is the 95% bootstrap interval.</p>"]
    return band + ["<h2>Policy comparison at the same budget</h2>",
            f"<p>Scored by: {html.escape(comparison['scored_by'])}. Every strategy spends at most the budget "
            f"({comparison['budget']:,.0f}) by the model's expected spend. The <i>response model</i> targets the users "
            "most likely to convert, whether or not the promotion changes their mind.</p>",
            _table(comparison["rows"]), _png(policy_comparison_figure(comparison, objective))] + _rules_note(comparison)


def _rules_note(comparison: dict) -> list[str]:
    """The targeting rules (green bars): segment, arm and why that arm, users matching and treated."""
    rules = comparison.get("targeting_rules") or []
    if not rules:
        return []
    items = "".join(
        f"<li><b>rule: {html.escape(r['name'])}</b> <code>{html.escape(r['rule'])}</code>: {r['matching_users']:,} "
        f"users match, {r['users_treated']:,} get <b>{html.escape(r['arm'])}</b> ({html.escape(r['arm_from'])}) "
        "in random order while the budget allows</li>" for r in rules)
    return ["<p>Targeting rules (<code>targeting_rules</code> of the config; green bars), scored like the other "
            f"strategies:</p><ul>{items}</ul>"]
