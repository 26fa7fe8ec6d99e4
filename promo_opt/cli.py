"""The ``promo-opt`` command: parse arguments, call the core in ``pipeline``, print a summary.

User errors (bad config, bad data, infeasible constraints) print one line and exit with code 2.
"""


import contextlib
import functools
import logging
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from promo_opt import pipeline
from promo_opt.config import CampaignConfig, load_config
from promo_opt.errors import PromoOptError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Budget-constrained promotion optimizer: learn uplift, allocate under a budget, check the policy.")

ConfigArg = typer.Argument(..., help="campaign config (YAML)", exists=False)
OutOpt = typer.Option(..., "--out", help="output directory")


def _setup_logging(quiet: bool, verbose: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # their INFO lines narrate every base-model fit (causalml) or every PC search of the bootstrap (pgmpy)
    for chatty in ("matplotlib", "causalml", "pgmpy"):
        logging.getLogger(chatty).setLevel(logging.WARNING)


@app.callback()
def _main(quiet: bool = typer.Option(False, "--quiet", "-q", help="only warnings and errors on stderr"),
          verbose: bool = typer.Option(False, "--verbose", "-v", help="debug logging")) -> None:
    _setup_logging(quiet, verbose)


def _config(path: Path, budget: Optional[float] = None, min_roi: Optional[float] = None) -> CampaignConfig:
    return load_config(path, **{"constraints.budget": budget, "constraints.min_roi": min_roi})


def _print_summary(summary: dict, out: Path) -> None:
    e = summary["expected"]
    budget = summary.get("budget")
    lines = [
        f"campaign        {summary['campaign']}  ({summary['n_candidates']:,} candidates, holdout {summary['holdout_size']:,})",
        "users per arm   " + ", ".join(f"{k} {v:,}" for k, v in summary["users_per_arm"].items()),
        f"expected        +{e['incremental_conversions']:,.1f} conversions, +{e['incremental_revenue']:,.0f} revenue, "
        f"spend {e['spend']:,.0f}" + (f" of {budget:,.0f}" if budget is not None else "") + f", ROI {e['roi']:.3g}",
        f"solver          {summary['solver']}: gap to the LP bound {summary['gap']:.1e}",
    ]
    f = summary.get("forecast")
    if f:
        iv = f.get("interval90")
        span = (f" (90% interval {iv['incremental_conversions'][0]:,.1f} to {iv['incremental_conversions'][1]:,.1f}; "
                f"spend {iv['spend'][0]:,.0f} to {iv['spend'][1]:,.0f})" if iv else "")
        lines.insert(3, f"forecast        +{f['incremental_conversions']:,.1f} conversions, spend {f['spend']:,.0f}, "
                        f"ROI {f['roi']:.3g}{span}")
    budget_held = summary.get("allocated_budget")
    binds = (summary.get("budget_use") or {}).get("limit") == "budget"  # where it does not, where it is held is moot
    if pipeline.held_moved(budget, budget_held) and binds:
        lines.insert(len(lines) - 1, f"budget          {budget:,.0f} on the forecast: the model's expected spend held at <= "
                        f"{budget_held:,.0f} (held-out spend is {budget / budget_held:.3g}x the model's)")
    weight = summary.get("allocated_cost_weight")
    if pipeline.held_moved(1.0, weight):
        lines.insert(len(lines) - 1, f"net revenue     held on the forecast: a user gets a promotion where its incremental "
                                     f"revenue exceeds {weight:.3g}x its cost (the held-out campaign showed this "
                                     "break-even pays more than the plain one)")
    floor, held = summary.get("min_roi"), summary.get("allocated_min_roi")
    if pipeline.floor_moved(floor, held) and not summary.get("roi_guarantee"):
        lines.insert(4, f"ROI floor       {floor:g} on the forecast: the model's expected ROI held at >= {held:.3g} "
                        f"(held-out returns are {floor / held:.3g}x the model's)")
    g = summary.get("roi_guarantee")
    if g:
        lines.insert(4, f"ROI guarantee   P(true ROI >= {g['min_roi']:g}) = {g['achieved_probability']:.2f} "
                        f"(asked {g['confidence']:g}; allocated under a floor of {g['allocated_min_roi']:.3g}, "
                        f"the plain floor gave {g['plain_floor_probability']:.2f})")
    truth = summary.get("truth")
    if truth:
        pt, ot, key = truth["policy_true"], truth["oracle_true"], truth["objective"]
        label = "conversions" if key == "incremental_conversions" else "net revenue"
        lines.append(f"true (simulated) {pt[key]:,.1f} {label} = {truth['share_of_oracle']:.1%} of the oracle's "
                     f"{ot[key]:,.1f}; spend {pt['spend']:,.0f}"
                     + (f" = {truth['true_spend_vs_budget']:.1%} of budget" if "true_spend_vs_budget" in truth else "")
                     + (f"; ROI {pt['roi']:.3g} = {truth['true_roi_vs_floor']:.1%} of floor" if "true_roi_vs_floor" in truth else ""))
    lt = summary.get("long_term")
    if lt:  # objective long_term_value (issue 13)
        lines.insert(3, f"long term       +{lt['incremental_revenue_long_term']:,.0f} revenue over the ltv horizon "
                        f"(immediate +{lt['incremental_revenue_immediate']:,.0f}), net long-term value "
                        f"{lt['long_term_value']:,.0f} (immediate {lt['net_revenue_immediate']:,.0f})"
                        + (f"; multipliers per '{lt['segment']['column']}' ({len(lt['segment']['levels'])} levels, "
                           f"{lt['segment']['unseen']['users']:,} candidates of unseen levels at the pooled ones)"
                           if lt.get("segment") else ""))
    lines.append(f"written to      {out}")
    from promo_opt.report.warnings import summary_warnings

    warnings = [f"WARNING: {what}: {msg}" for what, msg in summary_warnings(summary)]
    typer.echo("\n".join(warnings + lines))


def _guard(fn):
    """Turn user errors into one line on stderr and exit code 2 (tracebacks only for bugs)."""
    @functools.wraps(fn)  # typer reads the parameters through __wrapped__
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except PromoOptError as err:
            one_line = " ".join(part.strip() for part in str(err).splitlines() if part.strip())
            typer.echo(f"error: {one_line}", err=True)
            raise typer.Exit(code=2)
    return wrapper


@app.command()
@_guard
def run(config: Path = ConfigArg, out: Path = OutOpt,
        engine: str = typer.Option("local", "--engine", help="local, or spark (the config's spark: settings)")) -> None:
    """Train, score, allocate, evaluate and report, all from one campaign config."""
    cfg = _config(config)
    if _use_spark(engine):
        return _spark_run(cfg, out)
    with _training_progress() as progress:
        result = pipeline.run(cfg, progress=progress)
    pipeline.write_run(result, cfg, out)
    _print_summary(result.summary, out)


@app.command()
@_guard
def demo(out: Path = typer.Option(Path("demo-out"), "--out", help="output directory"),
         world: str = typer.Option("travel", help="built-in simulated world (see scenarios/)"),
         seed: int = typer.Option(0, help="seed of the simulated campaign")) -> None:
    """Simulate a past campaign in a built-in world, then run everything on it. No data needed."""
    from promo_opt.simulation import load_world

    typer.echo(f"simulating the '{world}' world into {out / 'campaign'} ...")
    cfg_path = load_world(world).write_campaign(out / "campaign", seed=seed)
    run(cfg_path, out, engine="local")


@app.command()
@_guard
def train(config: Path = ConfigArg, out: Path = OutOpt,
          track: bool = typer.Option(False, "--track", help="log the training run and the model to MLflow"),
          tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow tracking URI (default: "
                                                     "$MLFLOW_TRACKING_URI, else a local file store ./mlruns)")) -> None:
    """Fit the uplift and order-value models on the past campaign; save them to a model directory."""
    cfg = _config(config)
    with _training_progress() as progress:
        model = pipeline.train(cfg, progress=progress)
    model.save(out, cfg)
    sel = model.metrics["selection"]
    typer.echo(f"learner {sel['chosen']} ({sel['reason']}); model saved to {out}")
    if track:  # issue 13: model registry
        from promo_opt.tracking import log_training, tracking_uri as resolve_uri

        typer.echo(f"logged to MLflow run {log_training(out, cfg, model.metrics, tracking_uri)} ({resolve_uri(tracking_uri)})")


@app.command()
@_guard
def score(config: Path = ConfigArg, model: Path = typer.Option(..., "--model", help="model directory from 'train'"),
          out: Path = typer.Option(..., "--out", help="scores file (.parquet or .csv)"),
          engine: str = typer.Option("local", "--engine", help="local, or spark (the config's spark: settings)")) -> None:
    """Score the config's candidates: p_<arm> per arm and the expected order value."""
    from promo_opt.data import write_table
    from promo_opt.model import TrainedModel

    cfg = _config(config)
    if _use_spark(engine):
        return _spark_score(cfg, TrainedModel.load(model, cfg), out)
    scores = pipeline.score_candidates(cfg, TrainedModel.load(model, cfg))
    write_table(scores, out)
    typer.echo(f"{len(scores):,} candidates scored into {out}")


@app.command()
@_guard
def allocate(config: Path = ConfigArg, scores: Path = typer.Option(..., "--scores", help="scores file from 'score'"),
             out: Path = OutOpt, budget: Optional[float] = typer.Option(None, help="override constraints.budget"),
             min_roi: Optional[float] = typer.Option(None, "--min-roi", help="override constraints.min_roi"),
             engine: str = typer.Option("local", "--engine", help="local, or spark (the config's spark: settings)"),
             model: Optional[Path] = typer.Option(None, "--model", help="model directory from 'train': holds the "
                                                  "budget and the ROI floor on its winner's-curse-corrected forecast "
                                                  "and adds that forecast to the summary")) -> None:
    """Choose the arm of every candidate from a scores file (the data paths are not opened)."""
    cfg = _config(config, budget, min_roi)
    correction = _model_correction(model, cfg)
    if _use_spark(engine):
        return _spark_allocate(cfg, scores, out, correction)
    outcome = pipeline.allocate(cfg, pipeline.read_scores(scores), correction=correction)
    pipeline.write_allocation(outcome, out)
    _print_summary(outcome.summary, out)


def _model_correction(model: Optional[Path], cfg) -> dict | None:
    """The winner's-curse correction saved with a trained model (None without ``--model``)."""
    if model is None:
        return None
    from promo_opt.model import TrainedModel

    return TrainedModel.load(model, cfg).metrics.get("forecast_correction")


def _parse_budgets(budgets: Optional[str], budget_range: Optional[str]):
    if budgets and budget_range:
        raise PromoOptError("give --budgets or --budget-range, not both")
    try:
        if budgets:
            return [float(x) for x in budgets.split(",") if x.strip()]
        if budget_range:
            lo, hi, n = budget_range.split(":")
            return np.linspace(float(lo), float(hi), int(n)).tolist()
    except ValueError:
        raise PromoOptError(f"--budgets expects numbers like 1000,5000 and --budget-range LO:HI:N; got "
                            f"{budgets or budget_range!r}") from None
    return None


@app.command()
@_guard
def plan(config: Path = ConfigArg, scores: Path = typer.Option(..., "--scores", help="scores file from 'score'"),
         out: Path = OutOpt,
         budgets: Optional[str] = typer.Option(None, help="comma-separated budgets, e.g. 1000,5000,20000"),
         budget_range: Optional[str] = typer.Option(None, "--budget-range", help="LO:HI:N evenly spaced budgets"),
         min_roi: Optional[float] = typer.Option(None, "--min-roi", help="override constraints.min_roi"),
         engine: str = typer.Option("local", "--engine", help="local, or spark (the config's spark: settings)"),
         model: Optional[Path] = typer.Option(None, "--model", help="model directory from 'train': the ROI floor and "
                                              "each budget are held on its corrected forecast, as 'allocate --model' "
                                              "holds them "
                                              "(min_roi_confidence included), and every budget gets that forecast "
                                              "with its 90% interval")) -> None:
    """What-if budget planning: plan.csv and plan.png, from one sort of the marginal gains (under arm caps or
    segment budgets: the exact allocation at each budget)."""
    from promo_opt.data import write_bytes, write_table
    from promo_opt.report.html import budget_curve_figure, png_bytes

    cfg = _config(config, None, min_roi)
    correction = _model_correction(model, cfg)
    if _use_spark(engine):
        curve = _spark_plan(cfg, scores, out, _parse_budgets(budgets, budget_range), correction)
    else:
        curve = pipeline.plan(cfg, pipeline.read_scores(scores), _parse_budgets(budgets, budget_range),
                              correction=correction)
    write_table(curve, out / "plan.csv")
    write_bytes(png_bytes(budget_curve_figure(curve, cfg.constraints.budget)), out / "plan.png")
    shown = ["budget", "spend", "incremental_conversions", "roi"]
    if "forecast_incremental_conversions" in curve:  # the model's forecast of each point (pipeline.curve_forecast)
        shown[3:3] = ["forecast_incremental_conversions", "forecast_incremental_conversions_lo90",
                      "forecast_incremental_conversions_hi90"]
        shown.append("forecast_warning")
    if "gap" in curve:  # arm caps or segment budgets: each point is an exact allocation (pipeline.capped_plan)
        shown.append("gap")
        typer.echo("arm caps or segment budgets: each budget is an exact allocation under them (gap: its certified "
                   "gap to the bound)")
    typer.echo(curve[shown].to_string(index=False, float_format="%.4g"))
    if "forecast_warning" in curve and curve["forecast_warning"].any():
        typer.echo("forecast_warning: the 90% interval of the gain reaches zero at these budgets; a targeting list "
                   "there is a bet, not a forecast (see summary.forecast.warning of 'allocate --model')")
    typer.echo(f"written to {out}")


# ---- issue 6: HTTP service ----
keys_app = typer.Typer(no_args_is_help=True, help="API keys of the HTTP service.")
app.add_typer(keys_app, name="keys")
DataDirOpt = typer.Option(Path("promo-opt-data"), "--data-dir", help="service state: database file and artefacts")
DbOpt = typer.Option(None, "--db", help="database URL (default: SQLite file in --data-dir; or postgresql://...)")


@app.command()
@_guard
def serve(host: str = typer.Option("127.0.0.1", help="interface to listen on"),
          port: int = typer.Option(8000, help="TCP port"), db: Optional[str] = DbOpt, data_dir: Path = DataDirOpt,
          max_upload_mb: float = typer.Option(200.0, "--max-upload-mb", help="largest campaign upload"),
          workers: int = typer.Option(1, help="background job threads"),
          webhook_host: Optional[list[str]] = typer.Option(None, "--webhook-host",
                                                           help="a host pushes may target (repeat); default any")) -> None:
    """Run the HTTP service (FastAPI; OpenAPI at /docs and /openapi.json)."""
    import uvicorn

    from promo_opt.service import ServiceSettings, create_app
    from promo_opt.service.observability import JsonFormatter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logging.getLogger("promo_opt").addHandler(handler)
    logging.getLogger("promo_opt").propagate = False
    settings = ServiceSettings(data_dir=data_dir, db_url=db, max_upload_bytes=int(max_upload_mb * 2**20),
                               workers=workers, webhook_hosts=tuple(webhook_host or ()))
    uvicorn.run(create_app(settings), host=host, port=port, access_log=False, log_level="warning")


@keys_app.command("create")
@_guard
def keys_create(scopes: str = typer.Option("read,write", help="comma-separated: read, write"),
                db: Optional[str] = DbOpt, data_dir: Path = DataDirOpt) -> None:
    """Create an API key and print it once (only its salted hash is stored)."""
    from promo_opt.service.auth import create_key
    from promo_opt.service.settings import ServiceSettings
    from promo_opt.service.store import Store

    data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(ServiceSettings(data_dir=data_dir, db_url=db).database_url)
    try:
        typer.echo(create_key(store, scopes))
    finally:
        store.close()


models_app = typer.Typer(no_args_is_help=True, help="Models of the HTTP service.")
app.add_typer(models_app, name="models")


@models_app.command("register")
@_guard
def models_register(model_dir: Path = typer.Argument(..., help="model directory from 'promo-opt train'"),
                    campaign: str = typer.Option(..., "--campaign", help="campaign id (from POST /campaigns)"),
                    db: Optional[str] = DbOpt, data_dir: Path = DataDirOpt) -> None:
    """Register a model trained with 'promo-opt train' (a server-side step: models are never uploaded)."""
    from promo_opt.service.artefacts import Artefacts
    from promo_opt.service.registry import register_model
    from promo_opt.service.settings import ServiceSettings
    from promo_opt.service.store import Store

    store = Store(ServiceSettings(data_dir=data_dir, db_url=db).database_url)
    try:
        job = register_model(store, Artefacts(data_dir), campaign, model_dir)
    finally:
        store.close()
    typer.echo(f"{job.id}  (learner {job.result['learner']}, campaign {campaign})")


# ---- issue 7: observational causal tools ----
@app.command()
@_guard
def effect(config: Path = ConfigArg,
           method: str = typer.Option("aipw", help="naive | psm | ipw | aipw | did"),
           estimand: str = typer.Option("ate", help="ate | att (did always estimates the ATT)"),
           out: Path = OutOpt,
           adjust: Optional[str] = typer.Option(None, "--adjust", help="graph: adjust only for a valid backdoor set "
                                                "of a causal graph (default: every feature)"),
           graph: Optional[Path] = typer.Option(None, "--graph", help="graph.json from 'drivers' (default: the "
                                                "config's graph: edges)")) -> None:
    """Effect of every promotion arm on the outcome from past (possibly non-randomized) data: effect.json + report.html."""
    from promo_opt.observational.effect import estimate_effect, write_effect

    cfg = _config(config)
    if graph is not None and adjust != "graph":
        raise PromoOptError("--graph is read only with --adjust graph")
    result = estimate_effect(cfg, method, estimand, adjust=adjust, graph_path=graph)
    write_effect(result, out, cfg.name)
    for e in result.effects:
        typer.echo(f"{e.arm:<14} {e.estimate:+.4g}  95% CI [{e.ci_low:+.4g}, {e.ci_high:+.4g}]  "
                   f"(n {e.n_arm:,} vs {e.n_control:,} control)")
    for note in result.notes:
        typer.echo(f"note: {note}")
    typer.echo(f"{result.method} ({result.estimand}) written to {out}")


# ---- issue 13: long-term value ----
@app.command()
@_guard
def ltv(config: Path = ConfigArg, out: Path = OutOpt,
        boot: Optional[int] = typer.Option(None, "--boot", help="override ltv.boot (bootstrap replicates)"),
        engine: str = typer.Option("local", "--engine", help="local, or spark (the config's spark: settings)"),
        track: bool = typer.Option(False, "--track", help="log the fitted model, weights and values to MLflow"),
        tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow tracking URI (default: "
                                                   "$MLFLOW_TRACKING_URI, else a local file store ./mlruns)")) -> None:
    """Long-term value of every promotion arm from the weekly customer panel (ltv:): ltv.json + report.html."""
    from promo_opt.ltv.valuation import estimate_ltv, write_ltv

    cfg = _config(config)
    if _use_spark(engine):
        from promo_opt.spark.ltv import estimate_ltv_spark

        result = estimate_ltv_spark(cfg, boot=boot)
    else:
        result = estimate_ltv(cfg, boot=boot)
    write_ltv(result, out, cfg.name)
    d = result.to_dict()
    typer.echo(f"{d['model']['n_customers']:,} customers, {d['model']['n_rows']:,} customer-weeks fitted; "
               f"'{d['outcome']}' over {d['horizon']} weeks vs '{d['control']}'")
    for arm, a in d["arms"].items():
        i, lt, m = a["immediate"], a["long_term"], a["multiplier"]
        ci = (lambda v: f" [{v['ci_low']:+.4g}, {v['ci_high']:+.4g}]" if v["ci_low"] is not None else "")
        typer.echo(f"  {arm:<16} immediate {i['estimate']:+.4g}{ci(i)}  long_term {lt['estimate']:+.4g}{ci(lt)}  "
                   f"multiplier {m['estimate']:.3g}")
    for col, levels in d.get("segments", {}).items():
        for level, arms in levels.items():
            first = next(iter(arms.values()))
            typer.echo(f"  {col}={level} ({first['n_customers']:,} customers, {first['source']}): "
                       + ", ".join(f"{arm} multiplier {a['multiplier']['estimate']:.3g}" for arm, a in arms.items()))
    for note in d["notes"]:
        typer.echo(f"note: {note}")
    typer.echo(f"written to {out}")
    if track:
        from promo_opt.ltv.tracking import log_ltv, tracking_uri as resolve_uri

        typer.echo(f"logged to MLflow run {log_ltv(result, cfg, out, tracking_uri)} ({resolve_uri(tracking_uri)})")


@app.command("ltv-runs")
@_guard
def ltv_runs(tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow tracking URI")) -> None:
    """List the long-term-value runs logged with 'promo-opt ltv --track'."""
    from promo_opt.ltv.tracking import list_ltv_runs

    runs = list_ltv_runs(tracking_uri)
    typer.echo("no ltv runs logged" if runs.empty else runs.to_string(index=False, float_format="%.4g"))
# ---- issue 14: causal graph and drivers ----
@app.command()
@_guard
def drivers(config: Path = ConfigArg, out: Path = OutOpt) -> None:
    """Learn the causal graph of the drivers: section; rank what drives the outcome: graph.json, drivers.csv,
    suggested_rules.yaml (the top driver segments as targeting_rules), report.html."""
    from promo_opt.config import load_drivers_config
    from promo_opt.graph.run import run_drivers, write_drivers

    result = run_drivers(load_drivers_config(config))
    write_drivers(result, out)
    g = result.search.graph
    typer.echo(f"graph           {len(g.nodes)} variables, {len(g.adjacencies())} edges ({len(g.undirected)} undirected) "
               f"by {result.search.method}; bootstrap {result.search.bootstrap} x {result.search.bootstrap_rows:,} rows")
    for r in result.effects[:10]:
        if r.effect == r.effect:  # not NaN
            typer.echo(f"  {r.variable:<22} {r.effect:+.4g}  95% CI [{r.ci_low:+.4g}, {r.ci_high:+.4g}]")
        else:
            typer.echo(f"  {r.variable:<22} not identified: {r.note}")
    typer.echo("suggested rules " + ("; ".join(r.rule for r in result.suggested_rules) or "none") +
               " (suggested_rules.yaml)")
    for note in result.notes:
        typer.echo(f"note: {note}")
    typer.echo(f"written to      {out}")


# ---- issue 5: off-policy evaluation and measurement ----
def _print_intervals(title: str, rows: dict) -> None:
    typer.echo(title)
    for name, iv in rows.items():
        typer.echo(f"  {name:<24} {iv['estimate']:>12,.4g}   95% CI [{iv['ci_low']:,.4g}, {iv['ci_high']:,.4g}]")


@app.command()
@_guard
def evaluate(config: Path = ConfigArg, targets: Path = typer.Option(..., "--targets", help="targets.csv from 'allocate'"),
             holdout_data: Path = typer.Option(..., "--holdout-data", help="randomized rows of the same users: id, "
                                               "treatment, outcome (value, propensity) columns"),
             model: Optional[Path] = typer.Option(None, "--model", help="model directory for the DR outcome model "
                                                  "(default: cross-fitted per-arm means)"),
             out: Path = OutOpt, boot: int = typer.Option(1000, "--boot", help="bootstrap replicates")) -> None:
    """Off-policy check of a targeting list on randomized holdout rows: IPS, SNIPS and DR with 95% intervals."""
    from promo_opt.data import read_table, write_json
    from promo_opt.evaluation.ope import evaluate_targets
    from promo_opt.model import TrainedModel

    cfg = _config(config)
    trained = TrainedModel.load(model, cfg) if model is not None else None
    result = evaluate_targets(cfg, read_table(targets, "targets"), read_table(holdout_data, "holdout data"), trained,
                              holdout_path=holdout_data, n_boot=boot)
    write_json(result.as_dict(), out / "evaluation.json")
    typer.echo(f"{result.n:,} holdout rows, {result.n_treated:,} given a promotion by the policy; "
               f"propensity: {result.propensity_source}; DR outcome model: {result.outcome_model}")
    for est in ("ips", "snips", "dr"):
        _print_intervals(est, {k: v.as_dict() for k, v in result[est].items()})
    typer.echo(f"written to {out / 'evaluation.json'}")


@app.command()
@_guard
def measure(config: Path = ConfigArg, targets: Path = typer.Option(..., "--targets", help="targets.csv from 'allocate'"),
            outcomes: Path = typer.Option(..., "--outcomes", help="what happened: id, outcome (value) per target user"),
            out: Path = OutOpt, boot: int = typer.Option(2000, "--boot", help="bootstrap replicates")) -> None:
    """Realized incremental conversions, revenue, spend and ROI: the treated list vs its holdout."""
    from promo_opt.data import read_table, write_json
    from promo_opt.evaluation.measure import measure as measure_core

    cfg = _config(config)
    m = measure_core(cfg, read_table(targets, "targets"), read_table(outcomes, "outcomes"), outcomes_path=outcomes,
                     n_boot=boot)
    d = m.as_dict()
    write_json(d, out / "measurement.json")
    typer.echo(f"policy group {m.n_policy:,} users, holdout {m.n_holdout:,}")
    _print_intervals("realized", d["realized"])
    if m.expected is not None:
        typer.echo("expected        " + ", ".join(f"{k} {v:,.4g}" for k, v in m.expected.items()))
    typer.echo(f"written to {out / 'measurement.json'}")


@app.command("sample-size")
@_guard
def sample_size(users: int = typer.Option(..., "--users", help="users in the targeting list (holdout included)"),
                base_rate: float = typer.Option(..., "--base-rate", help="conversion rate without promotion"),
                uplift: float = typer.Option(..., "--uplift", help="absolute uplift in conversion rate to detect"),
                power: float = typer.Option(0.8, help="power"), alpha: float = typer.Option(0.05, help="two-sided level")) -> None:
    """Holdout fraction needed to detect an uplift with the given power (two-sided z-test)."""
    from promo_opt.evaluation.measure import holdout_fraction_needed

    r = holdout_fraction_needed(users, base_rate, uplift, power, alpha)
    if r.holdout_fraction is None:
        typer.echo(f"not reachable: {users:,} users give at most {r.best_power:.1%} power "
                   f"(holdout fraction {r.best_fraction:.3f}); more users or a larger uplift are needed")
        raise typer.Exit(code=1)
    typer.echo(f"holdout fraction {r.holdout_fraction:.4f} ({r.holdout_users:,} of {users:,} users) detects an uplift of "
               f"{uplift:g} on a base rate of {base_rate:g} with {power:.0%} power at alpha {alpha:g}")


# ---- issue 8: Spark engine (--engine spark) ----
def _use_spark(engine: str) -> bool:
    if engine not in ("local", "spark"):
        raise PromoOptError(f"--engine {engine!r}: expected 'local' or 'spark'")
    return engine == "spark"


def _spark_run(cfg: CampaignConfig, out: Path) -> None:
    from promo_opt.spark import engine

    result = engine.run(cfg, out)
    _print_summary(result.summary, out)
    _print_passes(result.summary["spark"]["passes"])


def _spark_score(cfg: CampaignConfig, model, out: Path) -> None:
    from promo_opt.spark import engine

    path, n = engine.score(cfg, model, str(out))
    typer.echo(f"{n:,} candidates scored on Spark into {path}")


def _spark_allocate(cfg: CampaignConfig, scores: Path, out: Path, correction: dict | None) -> None:
    from promo_opt.spark import engine

    outcome = engine.allocate(cfg, str(scores), out, correction=correction)
    _print_summary(outcome.summary, out)
    _print_passes(outcome.passes)


def _spark_plan(cfg: CampaignConfig, scores: Path, out: Path, budgets, correction: dict | None):
    from promo_opt.spark import engine

    return engine.plan(cfg, str(scores), out, budgets, correction=correction)


def _print_passes(passes: list[dict]) -> None:
    typer.echo(f"spark passes    {len(passes)}: " + "; ".join(f"{p['name']} {p['seconds']:.1f}s" for p in passes))


# ---- issue 4: uplift learners ----
@contextlib.contextmanager
def _training_progress():
    """A rich progress bar over the fold fits of training (on stderr); none with --quiet."""
    if logging.getLogger().getEffectiveLevel() > logging.INFO:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("training", total=None)

        def update(what: str, done: int, total: int) -> None:
            bar.update(task, description=f"fitting {what}", completed=done, total=total)
        yield update


@app.command()
def learners() -> None:
    """List the uplift learners for model.learner (and which ones 'auto' compares)."""
    from promo_opt.learners.registry import LEARNERS

    for spec in LEARNERS.values():
        flags = ["auto" if spec.in_auto else "", "weights" if spec.weights else "",
                 f"subsample > {spec.max_rows:,}" if spec.max_rows else ""]
        typer.echo(f"{spec.name:16s} {spec.description}  [{', '.join(f for f in flags if f)}]")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
