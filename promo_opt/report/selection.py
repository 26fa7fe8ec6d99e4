"""The report's learner-selection section: the comparison table and the per-arm Qini curves."""

from __future__ import annotations

import html



def selection_rows(sel: dict) -> list[dict]:
    """One row per candidate learner: risk, log loss, per-arm Qini, held-out policy value."""
    rows = []
    um = sel.get("uplift_metrics", {})
    pv = sel.get("policy_value", {})
    for n in sel["transformed_outcome_risk"]:
        r = {"learner": n, "chosen": n == sel["chosen"], "transformed-outcome risk": sel["transformed_outcome_risk"][n],
             "log loss": sel["oof_log_loss"][n]}
        for arm, m in um.get(n, {}).items():
            r[f"Qini {arm}"] = m["qini"]
        if n in pv:
            r["policy objective (DR)"] = pv[n]["objective"]
            r["policy spend (DR)"] = pv[n]["spend"]
            if "expected_spend" in pv[n]:
                r["expected spend"] = pv[n]["expected_spend"]
        if n in sel.get("seconds", {}):
            r["seconds"] = sel["seconds"][n]
        rows.append(r)
    return rows


def qini_figure(curves: dict):
    """Per-arm Qini curves of the chosen learner (held-out folds) against the random ranking."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from promo_opt.report.style import arm_color, readable_axes

    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for i, (arm, c) in enumerate(curves.items()):  # the promotion arms in the config's order (control is 0)
        line, = ax.plot(c["fraction"], c["qini"], label=arm, color=arm_color(i + 1))
        ax.plot([0, 1], [0, c["qini"][-1]], ls="--", lw=0.8, color=line.get_color())
    readable_axes(ax, x=False)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("share of users, ranked by predicted uplift")
    ax.set_ylabel("incremental conversions (Qini)")
    ax.legend(fontsize=8)
    return fig


def selection_section(sel: dict, table, png) -> list[str]:
    """HTML parts; ``table`` and ``png`` are the report's own table and figure helpers."""
    how = ""
    if sel.get("selection_rows"):
        how = (f"<p class='note'>Candidates {', '.join(sel.get('candidates', []))} compared on "
               f"{sel['selection_rows']:,} rows with {sel.get('selection_folds')} folds; the chosen learner "
               f"is fitted with {sel.get('final_folds')} folds. Qini: 1 = perfect ranking, 0 = random.</p>")
    parts = ["<h2>Learner selection</h2>", f"<p>{html.escape(sel['reason'])}</p>", how, table(selection_rows(sel))]
    if sel.get("overlap"):
        parts.append("<p class='note'>Overlap of the logged data: "
                     + ", ".join(f"{k} {v:.3g}" for k, v in sel["overlap"].items()) + "</p>")
    if sel.get("qini_curves"):
        parts += [f"<h2>Qini curves of {html.escape(sel['chosen'])} (held-out folds)</h2>",
                  png(qini_figure(sel["qini_curves"])),
                  "<p class='note'>Dashed: random targeting. Above the dashed line = the ranking finds the "
                  "users the promotion moves.</p>"]
    return parts



