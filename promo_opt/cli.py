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
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    logging.getLogger("causalml").setLevel(logging.WARNING)  # its INFO lines narrate every base-model fit


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
    truth = summary.get("truth")
    if truth:
        pt, ot, key = truth["policy_true"], truth["oracle_true"], truth["objective"]
        label = "conversions" if key == "incremental_conversions" else "net revenue"
        lines.append(f"true (simulated) {pt[key]:,.1f} {label} = {truth['share_of_oracle']:.1%} of the oracle's "
                     f"{ot[key]:,.1f}; spend {pt['spend']:,.0f}"
                     + (f" = {truth['true_spend_vs_budget']:.1%} of budget" if "true_spend_vs_budget" in truth else "")
                     + (f"; ROI {pt['roi']:.3g} = {truth['true_roi_vs_floor']:.1%} of floor" if "true_roi_vs_floor" in truth else ""))
    lines.append(f"written to      {out}")
    typer.echo("\n".join(lines))


def _guard(fn):
    """Turn user errors into one line on stderr and exit code 2 (tracebacks only for bugs)."""
    @functools.wraps(fn)  # typer reads the parameters through __wrapped__
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except PromoOptError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(code=2)
    return wrapper


@app.command()
@_guard
def run(config: Path = ConfigArg, out: Path = OutOpt) -> None:
    """Train, score, allocate, evaluate and report, all from one campaign config."""
    cfg = _config(config)
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
    run(cfg_path, out)


@app.command()
@_guard
def train(config: Path = ConfigArg, out: Path = OutOpt) -> None:
    """Fit the uplift and order-value models on the past campaign; save them to a model directory."""
    cfg = _config(config)
    with _training_progress() as progress:
        model = pipeline.train(cfg, progress=progress)
    model.save(out, cfg)
    sel = model.metrics["selection"]
    typer.echo(f"learner {sel['chosen']} ({sel['reason']}); model saved to {out}")


@app.command()
@_guard
def score(config: Path = ConfigArg, model: Path = typer.Option(..., "--model", help="model directory from 'train'"),
          out: Path = typer.Option(..., "--out", help="scores file (.parquet or .csv)")) -> None:
    """Score the config's candidates: p_<arm> per arm and the expected order value."""
    from promo_opt.data import write_table
    from promo_opt.model import TrainedModel

    cfg = _config(config)
    scores = pipeline.score_candidates(cfg, TrainedModel.load(model, cfg))
    write_table(scores, out)
    typer.echo(f"{len(scores):,} candidates scored into {out}")


@app.command()
@_guard
def allocate(config: Path = ConfigArg, scores: Path = typer.Option(..., "--scores", help="scores file from 'score'"),
             out: Path = OutOpt, budget: Optional[float] = typer.Option(None, help="override constraints.budget"),
             min_roi: Optional[float] = typer.Option(None, "--min-roi", help="override constraints.min_roi")) -> None:
    """Choose the arm of every candidate from a scores file (the data paths are not opened)."""
    cfg = _config(config, budget, min_roi)
    outcome = pipeline.allocate(cfg, pipeline.read_scores(scores))
    pipeline.write_allocation(outcome, out)
    _print_summary(outcome.summary, out)


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
         min_roi: Optional[float] = typer.Option(None, "--min-roi", help="override constraints.min_roi")) -> None:
    """What-if budget planning: plan.csv and plan.png, from one sort of the marginal gains."""
    from promo_opt.data import write_bytes, write_table
    from promo_opt.report.html import budget_curve_figure, png_bytes

    cfg = _config(config, None, min_roi)
    curve = pipeline.plan(cfg, pipeline.read_scores(scores), _parse_budgets(budgets, budget_range))
    write_table(curve, out / "plan.csv")
    write_bytes(png_bytes(budget_curve_figure(curve, cfg.constraints.budget)), out / "plan.png")
    typer.echo(curve[["budget", "spend", "incremental_conversions", "roi"]].to_string(index=False, float_format="%.4g"))
    typer.echo(f"written to {out}")


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
