"""A self-contained HTML report for a campaign manager: numbers first, then the pictures.

Plots are matplotlib PNGs embedded as base64, so the single file can be mailed around.
"""

from __future__ import annotations

import base64
import html
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from promo_opt.evaluation.forecast import held_moved  # noqa: E402
from promo_opt.report.style import arm_color, fit_ticks, readable_axes  # noqa: E402
from promo_opt.report.warnings import summary_warnings  # noqa: E402

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1000px;margin:2em auto;color:#222}
h1{font-size:1.6em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:4px 10px;border-bottom:1px solid #eee;text-align:right}
th{background:#f6f6f6}td:first-child,th:first-child{text-align:left}
.kpi{display:inline-block;margin:0 1.5em 1em 0}.kpi b{display:block;font-size:1.5em}
.note{color:#666;font-size:.9em}img{max-width:100%}
.warn{background:#fff3cd;border:1px solid #e0b400;padding:.6em 1em;color:#5c4300}
"""


def png_bytes(fig) -> bytes:
    """The figure as PNG bytes (no timestamp metadata, so output is reproducible); closes it."""
    fit_ticks(fig)  # no overlapping tick labels on the numeric axes
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _png(fig) -> str:
    return f'<img src="data:image/png;base64,{base64.b64encode(png_bytes(fig)).decode()}">'


def _fmt(x, digits=4) -> str:
    if isinstance(x, (bool, np.bool_)):
        return str(x)
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}"
    if isinstance(x, (float, np.floating)):
        if np.isnan(x):
            return "–"
        return f"{x:,.{digits}g}" if abs(x) < 1e4 else f"{x:,.0f}"
    return html.escape(str(x))


def _table(rows: list[dict] | pd.DataFrame) -> str:
    df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in r) + "</tr>" for r in df.itertuples(index=False))
    return f"<table><tr>{head}</tr>{body}</table>"


def budget_curve_figure(curve: pd.DataFrame, budget: float | None = None, chosen: float | None = None):
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.plot(curve["spend"], curve["incremental_conversions"], marker=".", color="#1f77b4", label="model's expected")
    if "forecast_incremental_conversions" in curve:  # pipeline.curve_forecast: the held-out measurement's
        ax.fill_between(curve["spend"], curve["forecast_incremental_conversions_lo90"],
                        curve["forecast_incremental_conversions_hi90"], color="#1f77b4", alpha=.15, lw=0,
                        label="forecast, 90% interval")
        ax.plot(curve["spend"], curve["forecast_incremental_conversions"], color="#1f77b4", ls="--", lw=1.2,
                label="forecast (winner's curse corrected)")
    if budget:
        ax.axvline(budget, color="#d62728", ls="--", lw=1, label=f"budget {budget:,.0f}")
        if chosen is not None:
            ax.plot([budget], [chosen], "o", color="#d62728")
    if budget or "forecast_incremental_conversions" in curve:
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel("expected promotion spend")
    ax.set_ylabel("incremental conversions")
    ax.set_title("What each budget buys (optimal policy per budget)")
    ax.grid(alpha=.3)
    readable_axes(ax)
    return fig


def per_arm_plot(users: dict[str, int], spend: dict[str, float]) -> str:
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    names = list(users)  # the config's order, control first: one colour per arm, as in the web app
    colors = [arm_color(i) for i in range(len(names))]
    axes[0].bar(names, [users[n] for n in names], color=colors)
    axes[0].set_title("users per arm")
    axes[1].bar(names, [spend[n] for n in names], color=colors)
    axes[1].set_title("expected spend per arm")
    for ax in axes:
        ax.tick_params(axis="x", rotation=30)
        ax.grid(axis="y", alpha=.3)
        readable_axes(ax, x=False)
    return _png(fig)


def decile_plot(deciles: list[dict]) -> str:
    df = pd.DataFrame(deciles)
    arms = list(dict.fromkeys(df["arm"]))
    fig, axes = plt.subplots(1, len(arms), figsize=(3.6 * len(arms), 3), sharey=True, squeeze=False)
    for i, (ax, arm) in enumerate(zip(axes[0], arms)):  # the promotion arms, in the config's order
        d = df[df["arm"] == arm].sort_values("decile")
        x = np.arange(len(d))
        ax.bar(x - .2, d["predicted_uplift"], .4, label="predicted", color=arm_color(i + 1), alpha=.45)
        ax.bar(x + .2, d["observed_uplift"], .4, label="observed", color=arm_color(i + 1))
        readable_axes(ax, x=False)
        ax.set_xticks(x, d["decile"].astype(int))
        ax.set_title(f"{arm} vs control")
        ax.set_xlabel("predicted-uplift decile (1 = top)")
        ax.axhline(0, color="k", lw=.5)
    axes[0][0].set_ylabel("uplift in conversion rate")
    axes[0][0].legend()
    return _png(fig)


def _warnings(summary: dict) -> list[str]:
    """Banners at the top of the report: drift between the past campaign and the candidates, a budget
    left unspent, a forecast whose interval does not show a gain, a past campaign that shows no promotion's
    average effect, the ROI guarantee, and the forecast's 90% interval."""
    out = [f"<p class='warn' role='alert'><b>Warning: {what}.</b> {html.escape(msg)}</p>"
           for what, msg in summary_warnings(summary)]
    f = summary.get("forecast") or {}
    iv = f.get("interval90")
    if iv:
        out.append("<p class='note'>Forecast, 90% interval of the true totals: incremental conversions "
                   f"{_fmt(iv['incremental_conversions'][0])} to {_fmt(iv['incremental_conversions'][1])}, incremental "
                   f"revenue {_fmt(iv['incremental_revenue'][0])} to {_fmt(iv['incremental_revenue'][1])}, spend "
                   f"{_fmt(iv['spend'][0])} to {_fmt(iv['spend'][1])}.</p>")
    g = summary.get("roi_guarantee")
    if g:
        out.append(f"<p class='note'>ROI guarantee: the floor {_fmt(g['min_roi'])} holds with probability "
                   f"{g['achieved_probability']:.2f} (asked {g['confidence']:g}); allocated under a floor of "
                   f"{_fmt(g['allocated_min_roi'])}.</p>")
    return out


def render_report(summary: dict, curve: pd.DataFrame, metrics: dict | None = None) -> str:
    """The report as an HTML string. ``summary`` is summary.json's content."""
    e = summary["expected"]
    budget = summary.get("budget")
    treated = sum(v for k, v in summary["users_per_arm"].items() if k != summary.get("control_arm"))
    kpis = [
        ("expected incremental conversions", e["incremental_conversions"]),
        ("expected spend", e["spend"]),
        ("budget", budget if budget is not None else float("nan")),
        *([("expected spend held at (budget on the forecast)", summary["allocated_budget"])]
          if held_moved(budget, summary.get("allocated_budget")) else []),
        ("expected incremental revenue", e["incremental_revenue"]),
        ("expected ROI", e["roi"]),
        *([("break-even: incremental revenue over cost held at (net revenue on the forecast)",
            summary["allocated_cost_weight"])] if held_moved(1.0, summary.get("allocated_cost_weight")) else []),
        *([("forecast incremental conversions (winner's curse corrected)", summary["forecast"]["incremental_conversions"]),
           ("forecast spend (corrected)", summary["forecast"]["spend"])] if summary.get("forecast") else []),
        ("users treated", treated),
        ("holdout (kept untreated)", summary["holdout_size"]),
    ]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>promo-opt: {html.escape(summary['campaign'])}</title>",
             f"<style>{_CSS}</style></head><body>",
             f"<h1>Promotion plan: {html.escape(summary['campaign'])}</h1>",
             *_warnings(summary),
             "<div>" + "".join(f"<div class='kpi'>{html.escape(k)}<b>{_fmt(v)}</b></div>" for k, v in kpis) + "</div>",
             f"<p class='note'>Objective: {html.escape(summary['objective'])}; ROI floor: {_fmt(summary.get('min_roi'))}. "
             f"Solver: {html.escape(summary['solver'])} ({html.escape(summary['solver_reason'])}); "
             f"upper bound on the objective {_fmt(summary['lp_upper_bound'], 8)}, gap {summary['gap']:.2e}.</p>"]
    truth = summary.get("truth")
    if truth:
        obj = truth["objective"]
        rows = [{"": "this policy, true", **{k: truth["policy_true"][k] for k in ("incremental_conversions", "spend", "incremental_revenue", "roi")}},
                {"": "this policy, expected", **{k: truth["policy_expected"][k] for k in ("incremental_conversions", "spend", "incremental_revenue", "roi")}},
                *([{"": "this policy, forecast (winner's curse corrected)", **{k: summary["forecast"][k] for k in ("incremental_conversions", "spend", "incremental_revenue", "roi")}}]
                  if summary.get("forecast") else []),
                {"": "oracle (perfect knowledge), true", **{k: truth["oracle_true"][k] for k in ("incremental_conversions", "spend", "incremental_revenue", "roi")}}]
        parts += ["<h2>Simulated world: true outcomes</h2>",
                  f"<p>The policy reaches <b>{truth['share_of_oracle']:.1%}</b> of the oracle's true {html.escape(obj)}"
                  + (f"; its true spend is {truth['true_spend_vs_budget']:.1%} of the budget" if "true_spend_vs_budget" in truth else "")
                  + (f"; its true ROI is {truth['true_roi_vs_floor']:.1%} of the floor" if "true_roi_vs_floor" in truth else "")
                  + ".</p>", _table(rows)]
    parts += ["<h2>Budget curve</h2>", _png(budget_curve_figure(curve, budget, e["incremental_conversions"])),
              "<p class='note'>Each point is the best policy for that budget under the floor the allocation held, from one sort "
              "of every user's marginal gains. The band is the forecast's 90% interval at each budget, from the held-out "
              "measurement at the campaign's budget.</p>",
              "<h2>Arms</h2>", per_arm_plot(summary["users_per_arm"], summary["spend_per_arm"])]
    ev = summary.get("evidence")
    if ev and ev.get("arms"):
        parts += ["<h2>What the past campaign shows: each promotion's average effect</h2>",
                  f"<p class='note'>Over the {ev['rows']:,} training rows, per user, on '{html.escape(ev['outcome'])}' "
                  "(doubly robust: the out-of-fold predictions as outcome model, the arms' logging probabilities as "
                  "weights), with a 90% interval.</p>",
                  _table([{"promotion": name, "average effect": a["effect"], "standard error": a["se"],
                           "90% interval, low": a["interval90"][0], "90% interval, high": a["interval90"][1],
                           "z": a["z"]} for name, a in ev["arms"].items()])]
    if metrics:
        parts += ["<h2>Is the model right? Uplift by decile (held-out folds)</h2>", decile_plot(metrics["uplift_by_decile"]),
                  "<p class='note'>Training users ranked by out-of-fold predicted uplift; observed = conversion rate of the arm minus control in the decile.</p>"]
        from promo_opt.report.selection import selection_section  # issue 4: comparison + Qini curves

        parts += selection_section(metrics["selection"], _table, _png)
        fc = metrics.get("forecast_correction") or {}
        if fc.get("applied"):
            parts += ["<h2>Winner's curse: the policy on held-out folds</h2>",
                      "<p class='note'>The training rows' out-of-fold probabilities, allocated like the candidates "
                      f"({fc['rows']:,} rows, budget scaled to them). Realized = doubly robust estimate from the real "
                      "outcomes. The shrunk ratio multiplies the candidates' forecast.</p>",
                      _table([{"total": k, "expected": fc["expected"][k], "realized (DR)": fc["realized"][k],
                               "ratio": fc["raw_ratio"][k], "standard error": fc["ratio_se"][k],
                               "ratio used (shrunk)": fc["ratio"][k]} for k in fc["ratio"]])]
    if "policy_comparison" in summary:
        from promo_opt.report.policies import policy_comparison_section

        parts += policy_comparison_section(summary["policy_comparison"], summary["objective"])
    secs = summary.get("seconds", {})
    parts += ["<h2>Run</h2>", _table([{"stage": k, "seconds": v} for k, v in secs.items()]), "</body></html>"]
    return "\n".join(parts)
