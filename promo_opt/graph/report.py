"""The HTML report of ``promo-opt drivers``: the ranked drivers, then the graph and its stability.

The graph is drawn in layers (a topological layering of the directed part, so causes sit left of
effects) with stable edges (bootstrap frequency >= ``stable``) solid and the others dashed, the
frequency printed on each edge; at 30+ nodes labels shrink and the figure grows with the layers.
"""

from __future__ import annotations

import html

import networkx as nx
import numpy as np

from promo_opt.report.html import _CSS, _png, _table, plt


def _layers(graph) -> dict[str, int]:
    """Longest-path layer of each node in a DAG of the class (undirected edges oriented without new
    colliders), so that no edge joins two nodes of one column."""
    g = graph.dag_extension()
    layer = {}
    for n in nx.topological_sort(g):
        preds = list(g.predecessors(n))
        layer[n] = 1 + max(layer[p] for p in preds) if preds else 0
    return layer


def graph_figure(graph, outcome: str, stable: float):
    layer = _layers(graph)
    by_layer: dict[int, list[str]] = {}
    for n in graph.nodes:
        by_layer.setdefault(layer[n], []).append(n)
    pos = {}
    for x, nodes in by_layer.items():
        for i, n in enumerate(sorted(nodes)):
            pos[n] = (x, i - (len(nodes) - 1) / 2)
    height = max(len(v) for v in by_layer.values())
    small = len(graph.nodes) >= 30
    fig, ax = plt.subplots(figsize=(max(6, 2.4 * len(by_layer)), max(3, 0.55 * height + 1)))
    for row in graph.edge_rows():
        (x0, y0), (x1, y1) = pos[row["from"]], pos[row["to"]]
        f = row["frequency"]
        solid = f is None or f >= stable
        style = "-" if solid else "--"
        color = "#333" if solid else "#999"
        if row["directed"]:
            ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                        arrowprops=dict(arrowstyle="-|>", linestyle=style, color=color, lw=1.2,
                                        shrinkA=14, shrinkB=14, connectionstyle="arc3,rad=0.08"))
        else:
            ax.plot([x0, x1], [y0, y1], linestyle=style, color=color, lw=1.2)
        if f is not None:
            ax.text((x0 + x1) / 2, (y0 + y1) / 2, f"{f:.2f}", fontsize=6 if small else 7, color="#c44e52",
                    ha="center", va="center", bbox=dict(fc="white", ec="none", pad=0.2))
    for n, (x, y) in pos.items():
        ax.text(x, y, n, ha="center", va="center", fontsize=6.5 if small else 8.5,
                bbox=dict(boxstyle="round,pad=0.3", fc="#fde0c5" if n == outcome else "#e8eef7", ec="#4c72b0"))
    ax.set_xlim(-0.7, max(by_layer) + 0.7)
    ax.set_ylim(-height / 2 - 0.5, height / 2 + 0.5)
    ax.axis("off")
    return fig


def drivers_figure(table):
    t = table.dropna(subset=["effect"]).iloc[::-1]
    t = t[t["effect"] != 0] if (t["effect"] != 0).any() else t
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(t) + 1.2))
    yy = np.arange(len(t))
    ax.errorbar(t["effect"], yy, xerr=[t["effect"] - t["ci_low"], t["ci_high"] - t["effect"]], fmt="o",
                color="#4c72b0", capsize=3)
    ax.axvline(0, color="k", lw=.6)
    ax.set_yticks(yy, t["variable"], fontsize=8)
    ax.set_xlabel("change of the outcome: do(high) - do(low)")
    ax.grid(axis="x", alpha=.3)
    return fig


def render_drivers_report(result) -> str:
    esc = html.escape
    g, s = result.search.graph, result.search
    table = result.effects_frame()
    n_stable = sum(1 for a in g.adjacencies() if g.frequency.get(a, 1.0) >= result.stable)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>promo-opt drivers: {esc(result.name)}</title>",
             f"<style>{_CSS}</style></head><body>",
             f"<h1>What drives '{esc(result.outcome)}': {esc(result.name)}</h1>",
             f"<p>{result.data.n:,} rows, {len(g.nodes)} variables; graph learned by <b>{esc(s.method)}</b> "
             f"({esc(s.score)}): {len(g.adjacencies())} edges, {len(g.undirected)} undirected; "
             + (f"{n_stable} found in at least {result.stable:.0%} of {s.bootstrap} bootstrap searches on "
                f"{s.bootstrap_rows:,} rows each." if s.bootstrap else "no bootstrap (drivers.bootstrap: 0).") + "</p>",
             "<h2>Drivers</h2>",
             "<p>Change of the outcome under do(variable = high) vs do(variable = low), adjusting for a valid "
             "backdoor set read from the graph; 95% bootstrap intervals with the graph held fixed.</p>"]
    if table["effect"].notna().any():
        parts.append(_png(drivers_figure(table)))
    parts.append(_table(table))
    parts += [f"<p class='note'>{esc(n)}</p>" for n in result.notes]
    parts += ["<h2>Suggested targeting rules</h2>",
              "<p>The top drivers whose interval excludes 0, each as the segment on its higher-outcome side "
              "(<code>suggested_rules.yaml</code>: paste into a campaign config's <code>targeting_rules</code> to compare "
              "it with the optimized policy at the same budget). A driver raises the outcome; whether a promotion adds "
              "anything there is what the comparison measures.</p>",
              _table([r.as_dict() for r in result.suggested_rules]) if result.suggested_rules
              else "<p class='note'>No driver qualified.</p>"]
    if len(result.funnel):
        parts += ["<h2>Funnel</h2>",
                  "<p>Among the users who took the previous action: how many took this one, and the attribute whose "
                  "levels differ most in that step's conversion (descriptive, 95% interval; the drivers above are "
                  "the effects).</p>", _table(result.funnel)]
    parts += ["<h2>Graph</h2>",
              f"<p>Solid: edges found in at least {result.stable:.0%} of the bootstrap searches; dashed: less stable. "
              "The number on an edge is its bootstrap frequency; lines without an arrow are undirected.</p>",
              _png(graph_figure(g, result.outcome, result.stable)),
              _table([{k: ("" if v is None else v) for k, v in r.items()} for r in g.edge_rows()]),
              "<h2>Assumptions</h2>",
              "<p class='note'>Causal sufficiency (no unmeasured common cause of two variables), faithfulness "
              "(independences in the data come from the graph, not from cancelling paths), rows independent, "
              "linear-Gaussian scoring of every variable (text variables as indicator blocks). The graph cannot tell "
              "the direction of an undirected edge, nor rule out a confounder that was not measured.</p>",
              "</body></html>"]
    return "\n".join(parts)
