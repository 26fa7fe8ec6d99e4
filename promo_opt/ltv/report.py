"""The HTML report of ``promo-opt ltv``: the long-term values first, then the model behind them.

Sections: per arm the immediate and long-term change of the outcome and their ratio (95%
intervals); the effect path over the horizon; the Shapley attribution across surrogate groups
with its efficiency check; the extra shocks; the fit (R^2, stability, weights); the assumptions.
"""

from __future__ import annotations

import html

import numpy as np

from promo_opt.report.html import _CSS, _png, _table, plt

ASSUMPTIONS = (
    "The promotions were randomized, or unconfounded given the lags and controls in the model.",
    "The dynamics are stable over the horizon: the weights fitted on the panel still hold in the weeks valued.",
    "Each equation is linear (ridge-regularized); differences between customers enter only through the controls.",
    "A shock to one customer does not change what other customers do (no interference).",
)


def effect_path_figure(d: dict, outcome: str):
    fig, ax = plt.subplots(figsize=(7, 3.4))
    for arm, a in d["arms"].items():
        p = a["path"]
        line = ax.plot(p["week"], p["estimate"], marker=".", label=arm)[0]
        if p["ci_low"][0] is not None:
            ax.fill_between(p["week"], p["ci_low"], p["ci_high"], alpha=.2, color=line.get_color())
    ax.axhline(0, color="k", lw=.5)
    ax.set_xlabel("week after the promotion")
    ax.set_ylabel(f"change in {outcome}")
    ax.set_title("effect of the arm given once in week 0 (95% band)")
    ax.legend(fontsize=8)
    return fig


def render_ltv_report(result, d: dict, title: str = "campaign") -> str:
    esc = html.escape
    o = d["outcome"]
    rows = [{"arm": arm, "immediate": a["immediate"]["estimate"], "immediate 95% CI": _ci(a["immediate"]),
             f"long_term ({d['horizon']} weeks)": a["long_term"]["estimate"], "long_term 95% CI": _ci(a["long_term"]),
             "multiplier": a["multiplier"]["estimate"], "multiplier 95% CI": _ci(a["multiplier"])}
            for arm, a in d["arms"].items()]
    m = d["model"]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>promo-opt ltv: {esc(title)}</title>",
             f"<style>{_CSS}</style></head><body>",
             f"<h1>Long-term value of the promotions on '{esc(o)}': {esc(title)}</h1>",
             f"<p>For a customer given the arm once (week 0) instead of '{esc(d['control'])}': <b>immediate</b> is the "
             f"change of {esc(o)} in week 0, <b>long_term</b> its change summed over weeks 0..{d['horizon'] - 1}, the "
             f"<b>multiplier</b> their ratio. Intervals: 95% percentile, {m['boot']} bootstrap replicates by customer.</p>",
             _table(rows), _png(effect_path_figure(d, o))]
    for col, levels in d.get("segments", {}).items():
        srows = [{col: level, "arm": arm, "customers": a["n_customers"], "source": a["source"],
                  "immediate": a["immediate"]["estimate"], "long_term": a["long_term"]["estimate"],
                  "long_term 95% CI": _ci(a["long_term"]), "multiplier": a["multiplier"]["estimate"],
                  "multiplier 95% CI": _ci(a["multiplier"])}
                 for level, arms in levels.items() for arm, a in arms.items()]
        parts += [f"<h2>Per level of '{esc(col)}' (ltv.segment)</h2>",
                  "<p>Each level valued on its own fit of the system (source <i>segment</i>), or given the pooled "
                  "values where the panel does not support it (source <i>pooled</i>; the reason is in the notes).</p>",
                  _table(srows)]
    parts += [f"<p class='note'>{esc(n)}</p>" for n in d["notes"]]
    for arm, s in d["shapley"].items():
        srows = [{"player": p, "attribution": v["estimate"], "95% CI": _ci(v)} for p, v in s["attribution"].items()]
        srows.append({"player": "(not through any surrogate)", "attribution": s["not_attributed"]["estimate"],
                      "95% CI": _ci(s["not_attributed"])})
        srows.append({"player": "total (long_term)", "attribution": s["total"]["estimate"], "95% CI": _ci(s["total"])})
        parts += [f"<h2>Shapley attribution of long_term: {esc(arm)}</h2>", _table(srows),
                  f"<p class='note'>{esc(s['method'])} Shapley values over surrogate groups: a player's channel is "
                  "blocked by holding its surrogates on their baseline path. Efficiency check: the attributions plus "
                  f"the unattributed part differ from the total by {s['efficiency_gap']:.2e}.</p>"]
    if d["shocks"]:
        srows = [{"shock": name, **{v: iv["estimate"] for v, iv in vals.items()}} for name, vals in d["shocks"].items()]
        parts += ["<h2>Shocks</h2><p>Change of every variable summed over the horizon.</p>", _table(srows)]
    parts += ["<h2>The model</h2>",
              f"<p>{m['n_rows']:,} customer-weeks of {m['n_customers']:,} customers, {m['lags']} lags, ridge alpha "
              f"{m['alpha']:g}; same-period order {esc(' → '.join(m['same_period_order']))}; spectral radius of the "
              f"fitted dynamics {m['spectral_radius']:.3f} (below 1: shocks die out).</p>",
              _table([{"equation": k, "R²": v} for k, v in m["r2"].items()]),
              "<p>Fitted weights with 95% intervals are in <code>weights.csv</code>.</p>",
              "<h2>What the model assumes</h2><ul>" + "".join(f"<li>{esc(a)}</li>" for a in ASSUMPTIONS) + "</ul>",
              "</body></html>"]
    return "\n".join(parts)


def _ci(iv: dict) -> str:
    if iv["ci_low"] is None or not np.isfinite(iv["ci_low"]):
        return "–"
    return f"[{iv['ci_low']:.4g}, {iv['ci_high']:.4g}]"
