"""The HTML report of ``promo-opt effect``: estimates first, then the evidence for trusting them.

Sections: the estimates with their intervals; overlap (share outside common support, propensity
histograms per arm); balance tables and a love plot (|SMD| before/after per covariate); for DID
the group x period means and the event-study plot with the parallel-trends check.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from promo_opt.report.html import _CSS, _png, _table, plt
from promo_opt.report.style import arm_color


def propensity_histograms(e: np.ndarray, arm: np.ndarray, arm_names: list[str]):
    """One panel per non-control arm: its propensity among its own rows vs among control rows."""
    K = len(arm_names)
    fig, axes = plt.subplots(1, K - 1, figsize=(3.8 * (K - 1), 3), squeeze=False)
    bins = np.linspace(0, 1, 41)
    for ax, k in zip(axes[0], range(1, K)):
        ax.hist(e[arm == k, k], bins=bins, alpha=.6, density=True, label=arm_names[k], color=arm_color(k))
        ax.hist(e[arm == 0, k], bins=bins, alpha=.6, density=True, label=arm_names[0], color=arm_color(0))
        ax.set_title(f"P({arm_names[k]} | x)")
        ax.set_xlabel("propensity")
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("density")
    return fig


def love_plot(table: pd.DataFrame, arm: str):
    """|standardized mean difference| per covariate, before and after adjustment (0.1 line)."""
    t = table.sort_values("smd_before", key=np.abs)
    fig, ax = plt.subplots(figsize=(6, 0.25 * len(t) + 1.2))
    yy = np.arange(len(t))
    ax.scatter(t["smd_before"].abs(), yy, label="before", color="#c44e52")
    if "smd_after" in t:
        ax.scatter(t["smd_after"].abs(), yy, label="after", color="#55a868")
    ax.axvline(0.1, color="grey", ls="--", lw=1)
    ax.set_yticks(yy, t["covariate"], fontsize=8)
    ax.set_xlabel("|standardized mean difference|")
    ax.set_title(f"balance: {arm} vs control")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=.3)
    return fig


def event_study_figure(es: pd.DataFrame, arm: str):
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.errorbar(es["relative"], es["coef"], yerr=[es["coef"] - es["ci_low"], es["ci_high"] - es["coef"]],
                fmt="o", capsize=3, color="#4c72b0")
    ax.axhline(0, color="k", lw=.5)
    ax.axvline(-0.5, color="#c44e52", ls="--", lw=1, label="treatment starts")
    ax.set_xlabel("period relative to the treatment start")
    ax.set_ylabel("effect vs last pre period")
    ax.set_title(f"event study: {arm} vs control")
    ax.legend(fontsize=8)
    return fig


def render_effect_report(result, title: str = "campaign") -> str:
    esc = html.escape
    rows = [{"arm": e.arm, "estimate": e.estimate, "ci_low": e.ci_low, "ci_high": e.ci_high, "se": e.se,
             "n_arm": e.n_arm, "n_control": e.n_control} for e in result.effects]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>promo-opt effect: {esc(title)}</title>",
             f"<style>{_CSS}</style></head><body>",
             f"<h1>Effect of the promotions on '{esc(result.outcome)}': {esc(title)}</h1>",
             f"<p>Method <b>{esc(result.method)}</b>, estimand <b>{esc(result.estimand.upper())}</b>, "
             f"{result.n_rows:,} rows; each arm against the control '{esc(result.arm_names[0])}' with a 95% interval.</p>",
             _table(rows)]
    parts += [f"<p class='note'>{esc(n)}</p>" for n in result.notes]
    if result.propensity is not None:
        ov = result.overlap
        parts += ["<h2>Overlap</h2>",
                  f"<p>{ov['share_outside_common_support']:.1%} of the rows are outside the arms' common support "
                  f"(min-max rule); rows with a compared propensity below {ov['trim']:g} are trimmed.</p>",
                  _png(propensity_histograms(result.propensity, result.arm, result.arm_names))]
    for arm, table in result.balance.items():
        parts += [f"<h2>Balance: {esc(arm)} vs control</h2>", _png(love_plot(table, arm)),
                  _table(table.round(4)),
                  "<p class='note'>Standardized mean difference = difference in means over the pooled standard "
                  "deviation before adjustment; |SMD| &lt; 0.1 is the usual threshold.</p>"]
    for arm, r in result.did.items():
        parts += [f"<h2>Difference-in-differences: {esc(arm)} vs control</h2>", _table(r.means),
                  f"<p>{esc(r.pretrend_note)}</p>"]
        if r.event_study is not None and len(r.event_study) > 1:
            parts.append(_png(event_study_figure(r.event_study, arm)))
            parts.append(_table(r.event_study))
    parts.append("</body></html>")
    return "\n".join(parts)
