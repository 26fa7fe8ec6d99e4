"""Analyses of a campaign as the service runs them: the core's ``effect``, ``ltv`` and ``drivers`` reports,
and the policy comparison of a targeting list; the same functions the CLI commands call.

An analysis is a job of kind ``analysis`` whose output directory holds exactly the files the CLI writes
(``effect.json`` / ``ltv.json`` + ``weights.csv`` / ``graph.json`` + ``drivers.csv`` + ...,
and ``report.html``); the job's result carries the key figures copied from those outputs.
"""

from __future__ import annotations

from pathlib import Path

from promo_opt.config import CampaignConfig, drivers_of
from promo_opt.errors import PromoOptError

# analysis -> what it needs in the campaign, in the user's words
CAMPAIGN_ANALYSES = {
    "effect": "a past-campaign table (data.train): the effect of every arm on the outcome",
    "ltv": "an ltv: section with a weekly panel (ltv.panel): long-term value of every arm",
    "drivers": "a drivers: section with its table (drivers.data): causal graph and ranked drivers",
}
ANALYSES = (*CAMPAIGN_ANALYSES, "policies")

# files an analysis may have written, by analysis (the GET endpoint serves only these)
FILES = {
    "effect": ("effect.json", "report.html"),
    "ltv": ("ltv.json", "weights.csv", "report.html"),
    "drivers": ("graph.json", "drivers.csv", "funnel.csv", "suggested_rules.yaml", "report.html"),
    "policies": ("evaluation.json",),
}
MEDIA_TYPES = {".json": "application/json", ".csv": "text/csv; charset=utf-8", ".html": "text/html; charset=utf-8",
               ".yaml": "application/yaml"}


def missing(config: CampaignConfig, analysis: str) -> str | None:
    """Why ``config`` cannot run ``analysis`` (a message naming the missing key), or None when it can."""
    if analysis == "effect":
        return None if config.data.train is not None else (
            "effect: the campaign has no past-campaign table (data.train); upload one with the campaign")
    if analysis == "ltv":
        if config.ltv is None:
            return "ltv: the campaign's config has no ltv: section (the weekly customer panel and its model)"
        if config.ltv.panel is None:
            return ("ltv.panel: the campaign's ltv: section gives multipliers but no weekly panel to fit; add "
                    "ltv.panel and upload the panel with the campaign (field 'panel')")
        return None
    if analysis == "drivers":
        return None if config.drivers is not None else (
            "drivers: the campaign's config has no drivers: section (the table and outcome of the driver analysis)")
    raise ValueError(f"not a campaign analysis: {analysis!r}")


def available(config: CampaignConfig) -> list[dict]:
    """Each campaign analysis, whether this campaign can run it, and why not."""
    out = []
    for name, what in CAMPAIGN_ANALYSES.items():
        reason = missing(config, name)
        out.append({"analysis": name, "needs": what, "available": reason is None, "reason": reason})
    return out


def check(config: CampaignConfig, analysis: str) -> None:
    reason = missing(config, analysis)
    if reason is not None:
        raise PromoOptError(reason)


def run_campaign_analysis(config: CampaignConfig, params: dict, out: Path) -> dict:
    """Run ``params["analysis"]`` as its CLI command does, writing its files into ``out``; its key figures."""
    analysis = params["analysis"]
    check(config, analysis)
    if analysis == "effect":
        from promo_opt.observational.effect import estimate_effect, write_effect

        graph_path = params.get("graph_path")
        result = estimate_effect(config, params["method"], params["estimand"], adjust=params.get("adjust"),
                                 graph_path=graph_path)
        write_effect(result, out, config.name)
        d = result.to_dict()
        keep = ("method", "estimand", "outcome", "control", "n_rows", "effects", "adjustment_set", "notes")
        return {"analysis": analysis, **{k: d[k] for k in keep if k in d}}
    if analysis == "ltv":
        from promo_opt.ltv.valuation import estimate_ltv, write_ltv

        result = estimate_ltv(config, boot=params.get("boot"))
        write_ltv(result, out, config.name)
        d = result.to_dict()
        arms = {a: {k: v[k] for k in ("immediate", "long_term", "multiplier")} for a, v in d["arms"].items()}
        return {"analysis": analysis, "outcome": d["outcome"], "horizon": d["horizon"], "control": d["control"],
                "arms": arms, "n_customers": d["model"]["n_customers"], "n_rows": d["model"]["n_rows"],
                "boot": d["model"]["boot"], "spectral_radius": d["model"]["spectral_radius"], "notes": d["notes"]}
    if analysis == "drivers":
        from promo_opt.graph.run import run_drivers, write_drivers

        result = run_drivers(drivers_of(config, "campaign"))
        write_drivers(result, out)
        g = result.search.graph
        rows = result.effects_frame().to_dict(orient="records")
        return {"analysis": analysis, "outcome": result.outcome, "method": result.search.method,
                "variables": len(g.nodes), "edges": len(g.adjacencies()), "undirected": len(g.undirected),
                "drivers": rows, "suggested_rules": [r.rule for r in result.suggested_rules], "notes": result.notes}
    raise ValueError(f"not a campaign analysis: {analysis!r}")


__all__ = ["ANALYSES", "CAMPAIGN_ANALYSES", "FILES", "MEDIA_TYPES", "available", "check", "missing",
           "run_campaign_analysis"]
