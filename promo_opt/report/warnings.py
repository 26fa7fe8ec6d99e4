"""What a summary warns the planner of, in one place for every door: the CLI prints these first,
``report.html`` puts them on top (the web app shows them above a targeting list, from the same summary fields
and the model's metrics: ``drift`` and ``evidence`` are the model's)."""

from __future__ import annotations


def summary_warnings(summary: dict) -> list[tuple[str, str]]:
    """(what, message) pairs, most pressing first: ``drift`` (the candidates differ from the past
    campaign's users: ``summary.drift``), ``budget`` (most of the budget left unspent:
    ``summary.budget_use.warning``), ``forecast`` (the 90% interval does not show a gain:
    ``summary.forecast.warning``), ``evidence`` (the past campaign shows no promotion's average effect:
    ``summary.evidence.warning``, :func:`promo_opt.evaluation.evidence.weak_evidence_warning`)."""
    drift = summary.get("drift") or {}
    found = [("drift", drift.get("message") if drift.get("shifted") else None),
             ("budget", (summary.get("budget_use") or {}).get("warning")),
             ("forecast", (summary.get("forecast") or {}).get("warning")),
             ("evidence", (summary.get("evidence") or {}).get("warning"))]
    return [(what, msg) for what, msg in found if msg]
