"""Allocation benchmark: the Lagrangian dual allocator against its NumPy floor and exact solvers.

Run with ``make bench`` (or ``.venv/bin/python benchmarks/bench_allocation.py``); ``--quick``
divides every size by 100 for a smoke run. Every measured case runs in a fresh child process
(this same script with ``--case``), so its peak RSS is its own: the parent reads it with
``os.wait4`` (``ru_maxrss`` of that child) and the child also records the peak of each phase
(``/proc/self/clear_refs`` reset + ``VmHWM``), so solver memory is told apart from the instance.

Instances (float64, ``numpy.random.default_rng(seed)``), K = 5 arms (control + 4 discounts)::

    p0 ~ Beta(2, 20)            per-user base conversion
    s  ~ Normal(0.01, 0.02)     per-user lift scale (some users negative)
    p_k = clip(p0 + s * strength_k, 0, 1),  strength = (0, 1, 1.8, 2.5, 3) increasing
    value ~ LogNormal(log 40, 0.8)
    spend = p_k * discount_k * value,  gain = p_k - p_0,  revenue = (p_k - p_0) * value

Budget = 20% of the spend of giving everyone the most expensive arm; the ROI floor is
``--roi-factor`` (1.5) x the ROI of the budget-only solution, so it binds (mu > 0).
Results: a table on stdout and ``reports/bench_allocation.json`` (``..._quick.json`` with --quick).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python benchmarks/bench_allocation.py` without an installed package
    sys.path.insert(0, str(ROOT))

DISCOUNTS = np.array([0.0, 0.05, 0.10, 0.15, 0.20])
STRENGTH = np.array([0.0, 1.0, 1.8, 2.5, 3.0])
BUDGET_SHARE = 0.20
SIZES = {"big": 10_000_000, "mid": 1_000_000, "small": 20_000, "tiny": 2_000}
# full-data passes of solve_dual's reduced path (dual.py): 4 corner argmax choices
# (_solve_reduced, per box attempt) + 1 dual_value bound (solve_dual) + 1 evaluation (finish)
PASSES_REDUCED = 6
CPSAT_CAP = 120.0
MEM_LIMIT = 12 * 2**30  # address-space cap of every child: nothing here may use more
CHILD_TIMEOUT = 900.0


# --------------------------------------------------------------------------------------------
# instances
# --------------------------------------------------------------------------------------------
def synthetic_arrays(n: int, seed: int, strength: np.ndarray = STRENGTH, discounts: np.ndarray = DISCOUNTS):
    """gain, spend, revenue ``(n, K)`` float64 with column 0 = control (zeros), K = ``len(strength)``:
    the synthetic instance of the module doc (also :mod:`bench_plan_floor`'s, with 4 arms)."""
    rng = np.random.default_rng(seed)
    p0 = rng.beta(2.0, 20.0, n)
    scale = rng.normal(0.01, 0.02, n)
    value = rng.lognormal(np.log(40.0), 0.8, n)
    p = np.clip(p0[:, None] + scale[:, None] * strength[None, :], 0.0, 1.0)
    gain = p - p[:, :1]
    spend = p * discounts[None, :] * value[:, None]
    revenue = gain * value[:, None]
    return gain, spend, revenue


def make_instance(n: int, seed: int) -> dict[str, np.ndarray | float]:
    """gain, spend, revenue ``(n, 5)`` float64 with column 0 = control (zeros), and the budget."""
    gain, spend, revenue = synthetic_arrays(n, seed)
    budget = BUDGET_SHARE * float(spend[:, -1].sum())
    return {"gain": gain, "spend": spend, "revenue": revenue, "budget": budget}


def roi_floor(inst, factor: float) -> tuple[float, float]:
    """(min_roi, roi of the budget-only dual solution) for an instance."""
    from promo_opt.allocation.dual import solve_dual
    from promo_opt.allocation.problem import AllocationProblem

    res = solve_dual(AllocationProblem(inst["gain"], inst["spend"], inst["revenue"], budget=inst["budget"]))
    return factor * res.roi, res.roi


# --------------------------------------------------------------------------------------------
# measuring inside a child
# --------------------------------------------------------------------------------------------
def _vm(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def reset_peak() -> float:
    """Reset this process's peak RSS to its current RSS (Linux >= 4.0); return current RSS MB."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _vm("VmRSS")


def peak_mb() -> float:
    return _vm("VmHWM")


class HowLog(logging.Handler):
    """Collects solve_dual's 'dual solve (<how>)' log lines: which path it took."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def timed(fn, repeat: int = 1):
    """(median seconds, all seconds, last result, peak RSS MB over the runs, RSS MB before)."""
    before = reset_peak()
    times, out = [], None
    for _ in range(repeat):
        out = None
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), times, out, peak_mb(), before


def bare_pass(g, c, lam, repeat=3) -> float:
    """The floor: one NumPy pass ``(gain - lam * cost).argmax(axis=1)`` over all users."""
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        (g - lam * c).argmax(axis=1)
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def alloc_summary(res) -> dict:
    return {"objective": res.objective, "bound": res.bound, "gap": res.gap, "spend": res.spend,
            "revenue": res.revenue, "roi": res.roi, "status": res.status,
            "lambda": res.multipliers.get("lambda_budget"), "mu": res.multipliers.get("mu_roi"),
            "n_fractional": res.n_fractional, "solver_seconds": res.seconds}


def case_dual_big(n: int, seed: int, roi_factor: float | None, repeat: int = 3) -> dict:
    """solve_dual at n users (median of ``repeat``), its peak RSS and the NumPy floor."""
    from promo_opt.allocation.dual import solve_dual
    from promo_opt.allocation.problem import AllocationProblem

    t0 = time.perf_counter()
    inst = make_instance(n, seed)
    t_gen = time.perf_counter() - t0
    out = {"n": n, "seed": seed, "generate_s": t_gen, "budget": inst["budget"]}
    min_roi = None
    if roi_factor is not None:
        min_roi, base_roi = roi_floor(inst, roi_factor)
        out.update(min_roi=min_roi, budget_only_roi=base_roi, roi_factor=roi_factor)
    t0 = time.perf_counter()
    problem = AllocationProblem(inst["gain"], inst["spend"], inst["revenue"], budget=inst["budget"], min_roi=min_roi)
    out["problem_build_s"] = time.perf_counter() - t0
    how = HowLog()
    logging.getLogger("promo_opt.allocation.dual").addHandler(how)
    logging.getLogger("promo_opt.allocation.dual").setLevel(logging.INFO)
    med, ts, res, peak, before = timed(lambda: solve_dual(problem), repeat)
    out.update(dual_s=med, dual_runs_s=ts, peak_rss_mb=peak, rss_before_mb=before,
               solver_extra_mb=peak - before, how=how.lines[-1] if how.lines else "", **alloc_summary(res))
    lam = res.multipliers.get("lambda_budget", 0.0)
    out["bare_pass_s"] = bare_pass(inst["gain"], inst["spend"], lam)
    out["passes"] = PASSES_REDUCED if "reduced" in out["how"] else None
    if out["passes"]:
        out["floor_s"] = out["passes"] * out["bare_pass_s"]
        out["ratio_to_floor"] = med / out["floor_s"]
    return out


def case_frontier(n: int, seed: int) -> dict:
    """plan() over 100 budgets in [0, 2B] vs one solve_dual at B, same budget-only instance."""
    from promo_opt.allocation.dual import solve_dual
    from promo_opt.allocation.frontier import plan
    from promo_opt.allocation.problem import AllocationProblem

    inst = make_instance(n, seed)
    problem = AllocationProblem(inst["gain"], inst["spend"], inst["revenue"], budget=inst["budget"])
    conversions = inst["gain"]  # the conversions objective: gain is incremental conversions
    budgets = np.linspace(0.0, 2.0 * inst["budget"], 100)
    t_dual, _, res, peak_d, before_d = timed(lambda: solve_dual(problem))
    t_plan, _, df, peak_p, before_p = timed(lambda: plan(problem, conversions, budgets=budgets))
    # the plan row at B must be the dual's integer policy (both are the rounded LP prefix)
    row = df.iloc[int(np.argmin(np.abs(df["budget"].to_numpy() - inst["budget"])))]
    return {"n": n, "seed": seed, "budget": inst["budget"], "dual_s": t_dual, "plan_s": t_plan, "ratio": t_plan / t_dual,
            "n_budgets": len(budgets), "dual_objective": res.objective,
            "plan_objective_at_B": float(row["objective"]), "plan_budget_at_B": float(row["budget"]),
            "dual_peak_rss_mb": peak_d, "plan_peak_rss_mb": peak_p, "plan_extra_mb": peak_p - before_p,
            "dual_extra_mb": peak_d - before_d}


def case_exact(n: int, seed: int, roi_factor: float, direct_check: bool) -> dict:
    """solve_dual vs CP-SAT (and the direct path) on one budget + ROI instance."""
    from promo_opt.allocation import exact
    from promo_opt.allocation.dual import DIRECT_LIMIT, dual_value, solve_dual
    from promo_opt.allocation.problem import AllocationProblem
    from promo_opt.errors import PromoOptError

    inst = make_instance(n, seed)
    min_roi, _ = roi_floor(inst, roi_factor)
    problem = AllocationProblem(inst["gain"], inst["spend"], inst["revenue"], budget=inst["budget"], min_roi=min_roi)
    how = HowLog()
    logging.getLogger("promo_opt.allocation.dual").addHandler(how)
    logging.getLogger("promo_opt.allocation.dual").setLevel(logging.INFO)
    t_dual, ts, res, peak, _ = timed(lambda: solve_dual(problem), 3)
    out = {"n": n, "seed": seed, "min_roi": min_roi, "dual_s": t_dual, "dual_runs_s": ts,
           "how": how.lines[-1], "dual_peak_rss_mb": peak, **alloc_summary(res)}
    lam, mu = res.multipliers["lambda_budget"], res.multipliers["mu_roi"]
    out["dual_value_bound"] = dual_value(problem, lam, mu)
    if direct_check and n > DIRECT_LIMIT:
        t0 = time.perf_counter()
        direct = solve_dual(problem, direct_limit=n + 1)
        out["direct"] = {"seconds": time.perf_counter() - t0, "how": how.lines[-1], **alloc_summary(direct)}
        out["direct"]["rel_diff_vs_reduced"] = (direct.objective - res.objective) / abs(direct.objective)
    limit = min(max(10.0, 100.0 * t_dual), CPSAT_CAP)
    out["cpsat_time_limit"] = limit
    t0 = time.perf_counter()
    try:
        cp = exact.solve_cpsat(problem, time_limit=limit)
    except PromoOptError as e:
        out["cpsat"] = {"error": f"{type(e).__name__}: {e}", "seconds": time.perf_counter() - t0}
    else:
        out["cpsat"] = {"seconds": time.perf_counter() - t0, **alloc_summary(cp)}
        out["cpsat"]["dual_minus_cpsat_rel"] = (res.objective - cp.objective) / abs(res.objective)
        out["cpsat"]["time_ratio"] = out["cpsat"]["seconds"] / t_dual
    out["cpsat_peak_rss_mb"] = peak_mb()
    return out


def case_mip(n_sub: int, n_from: int, seed: int, roi_factor: float) -> dict:
    """SCIP (exact.solve_mip) vs solve_dual on ``n_sub`` users drawn from the ``n_from`` instance."""
    from promo_opt.allocation import exact
    from promo_opt.allocation.dual import solve_dual
    from promo_opt.allocation.problem import AllocationProblem

    inst = make_instance(n_from, seed)
    min_roi, _ = roi_floor(inst, roi_factor)
    idx = np.sort(np.random.default_rng(seed + 1).choice(n_from, size=min(n_sub, n_from), replace=False))
    budget = inst["budget"] * idx.size / n_from
    problem = AllocationProblem(inst["gain"][idx], inst["spend"][idx], inst["revenue"][idx], budget=budget,
                                min_roi=min_roi)
    del inst
    t0 = time.perf_counter()
    res = solve_dual(problem)
    t_dual = time.perf_counter() - t0
    t0 = time.perf_counter()
    mip = exact.solve_mip(problem, time_limit=60.0)
    t_mip = time.perf_counter() - t0
    t0 = time.perf_counter()
    cp = exact.solve_cpsat(problem, time_limit=60.0)
    t_cp = time.perf_counter() - t0
    return {"cpsat_s": t_cp, "cpsat": alloc_summary(cp), "cpsat_minus_dual_rel": (cp.objective - res.objective) / abs(cp.objective),
            "cpsat_vs_dual_time_ratio": t_cp / t_dual,"n": idx.size, "drawn_from": n_from, "seed": seed, "dual_s": t_dual, "mip_s": t_mip,
            "dual": alloc_summary(res), "mip": alloc_summary(mip), "mip_reason": mip.solver_reason,
            "mip_minus_dual_rel": (mip.objective - res.objective) / abs(mip.objective),
            "dual_vs_mip_bound_rel": (mip.bound - res.objective) / abs(mip.bound)}


def run_case(args) -> dict:
    resource.setrlimit(resource.RLIMIT_AS, (MEM_LIMIT, MEM_LIMIT))
    n, seed = args.n, args.seed
    if args.case == "dual_roi":
        return case_dual_big(n, seed, args.roi_factor)
    if args.case == "dual_budget":
        return case_dual_big(n, seed, None)
    if args.case == "dual_both_bind":
        return case_dual_big(n, seed, args.both_factor, repeat=1)
    if args.case == "frontier":
        return case_frontier(n, seed)
    if args.case == "exact_mid":
        return case_exact(n, seed, args.roi_factor, direct_check=True)
    if args.case == "exact_small":
        return case_exact(n, seed, args.roi_factor, direct_check=False)
    if args.case == "mip_tiny":
        return case_mip(args.n_sub, n, seed, args.roi_factor)
    raise SystemExit(f"unknown --case {args.case!r}")


# --------------------------------------------------------------------------------------------
# the parent: spawn cases, print the table, write the report
# --------------------------------------------------------------------------------------------
def machine() -> dict:
    from threadpoolctl import threadpool_info

    import ortools

    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    return {
        "nproc": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)), "cpu": cpu,
        "mem_total_gb": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30,
        "loadavg_at_start": os.getloadavg(), "python": platform.python_version(),
        "numpy": np.__version__, "ortools": ortools.__version__,
        "blas": [{k: d.get(k) for k in ("internal_api", "version", "num_threads", "threading_layer")}
                 for d in threadpool_info()],
    }


def spawn(case: str, n: int, args, **extra) -> dict:
    """Run one case in a fresh child; add its own peak RSS (os.wait4) and wall time."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        result_path = f.name
    cmd = [sys.executable, str(Path(__file__).resolve()), "--case", case, "--n", str(n), "--seed", str(args.seed),
           "--roi-factor", str(args.roi_factor), "--both-factor", str(args.both_factor), "--result", result_path]
    for k, v in extra.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)
    killer = threading.Timer(CHILD_TIMEOUT, proc.kill)
    killer.start()
    _, status, ru = os.wait4(proc.pid, 0)
    killer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    try:
        if proc.returncode != 0:
            return {"case": case, "n": n, "error": f"child exited with code {proc.returncode}", "wall_s": wall,
                    "child_max_rss_mb": ru.ru_maxrss / 1024.0}
        with open(result_path) as f:
            out = json.load(f)
    finally:
        os.unlink(result_path)
    out.update(case=case, wall_s=wall, child_max_rss_mb=ru.ru_maxrss / 1024.0)
    return out


def fmt(x, spec=".3g"):
    return "-" if x is None else format(x, spec)


def report(results: dict, info: dict) -> list[str]:
    L = []
    mark = lambda ok: "OK  " if ok else "MISS"  # noqa: E731
    for key, title in (("dual_roi", "budget + ROI"), ("dual_budget", "budget only"),
                       ("dual_both_bind", "budget + ROI, both binding")):
        r = results.get(key)
        if r is None:
            continue
        if "error" in r:
            L.append(f"[{key}] n={r['n']:,}: FAILED {r['error']}")
            continue
        L.append(f"[{key}] solve_dual, {title}, n={r['n']:,} users x 5 arms "
                 f"(median of {len(r['dual_runs_s'])}: {', '.join(f'{t:.2f}' for t in r['dual_runs_s'])} s)")
        L.append(f"    path: {r['how']}")
        if r.get("min_roi") is not None:
            L.append(f"    min_roi = {r['min_roi']:.4f} ({r['roi_factor']}x budget-only ROI {r['budget_only_roi']:.4f})")
        L.append(f"    lambda = {fmt(r['lambda'], '.6g')}  mu = {fmt(r['mu'], '.6g')}  objective = {r['objective']:.6f}  "
                 f"gap = {r['gap']:.2e}  spend/budget = {r['spend'] / r['budget']:.6f}  roi = {r['roi']:.4f}")
        L.append(f"    time   {r['dual_s']:8.2f} s   {mark(r['dual_s'] < 10)} (target < 10 s)")
        L.append(f"    memory {r['child_max_rss_mb'] / 1024:8.2f} GB peak RSS of the child process   "
                 f"{mark(r['child_max_rss_mb'] < 4096)} (target < 4 GB); instance resident {r['rss_before_mb'] / 1024:.2f} GB, "
                 f"solve adds {r['solver_extra_mb'] / 1024:.2f} GB")
        if r.get("passes"):
            L.append(f"    floor  {r['passes']} passes x bare pass {r['bare_pass_s']:.3f} s = {r['floor_s']:.2f} s -> "
                     f"ratio {r['ratio_to_floor']:.2f}x   {mark(r['ratio_to_floor'] <= 3)} (target <= 3x)")
        else:
            L.append(f"    floor  bare pass {r['bare_pass_s']:.3f} s; direct path, pass count not applicable")
        L.append(f"    (problem construction/validation {r['problem_build_s']:.2f} s, not timed; "
                 f"instance generation {r['generate_s']:.2f} s; child wall {r['wall_s']:.1f} s)")
    for key in ("exact_mid", "exact_small"):
        r = results.get(key)
        if r is None:
            continue
        if "error" in r:
            L.append(f"[{key}] n={r['n']:,}: FAILED {r['error']}")
            continue
        L.append(f"[{key}] solve_dual vs CP-SAT, budget + ROI, n={r['n']:,} (min_roi {r['min_roi']:.4f})")
        L.append(f"    dual    {r['dual_s']:.3f} s  objective {r['objective']:.6f}  gap {r['gap']:.2e}  "
                 f"{mark(r['gap'] < 1e-6)} (target < 1e-6)  lambda {r['lambda']:.6g} mu {r['mu']:.6g}  [{r['how']}]")
        L.append(f"    dual_value(lam, mu) bound {r['dual_value_bound']:.6f}")
        if "direct" in r:
            d = r["direct"]
            L.append(f"    direct path (no reduction) {d['seconds']:.2f} s  objective {d['objective']:.6f}  "
                     f"gap {d['gap']:.2e}  (direct - reduced)/direct = {d['rel_diff_vs_reduced']:.2e}")
        cp = r["cpsat"]
        if "error" in cp:
            L.append(f"    CP-SAT  time_limit {r['cpsat_time_limit']:.0f} s: NO SOLUTION after {cp['seconds']:.1f} s: {cp['error']}")
        else:
            L.append(f"    CP-SAT  time_limit {r['cpsat_time_limit']:.0f} s, took {cp['seconds']:.1f} s ({cp['status']}): "
                     f"objective {cp['objective']:.6f}  own gap {cp['gap']:.2e}")
            same = abs(cp["dual_minus_cpsat_rel"]) < 1e-3
            L.append(f"    dual is {cp['time_ratio']:.0f}x faster   {mark(cp['time_ratio'] >= 100 and same)} (target >= 100x at "
                     f"an agreeing objective);  (dual - CP-SAT)/dual = {cp['dual_minus_cpsat_rel']:.2e}"
                     + ("" if same else "  <- CP-SAT's policy is far from optimal: the speed ratio is not a like-for-like one"))
        L.append(f"    peak RSS of the child {r['child_max_rss_mb'] / 1024:.2f} GB")
    r = results.get("frontier")
    if r is not None:
        if "error" in r:
            L.append(f"[frontier] FAILED {r['error']}")
        else:
            L.append(f"[frontier] plan() over {r['n_budgets']} budgets in [0, 2B], budget only, n={r['n']:,}")
            L.append(f"    plan {r['plan_s']:.2f} s  vs one solve_dual {r['dual_s']:.2f} s -> ratio {r['ratio']:.2f}x   "
                     f"{mark(r['ratio'] <= 2)} (target <= 2x)")
            L.append(f"    objective: plan at its grid budget nearest B ({r['plan_budget_at_B']:.6g}) {r['plan_objective_at_B']:.6f}, "
                     f"solve_dual at B ({r['budget']:.6g}) {r['dual_objective']:.6f}; "
                     f"peak RSS {r['child_max_rss_mb'] / 1024:.2f} GB (plan adds {r['plan_extra_mb'] / 1024:.2f} GB)")
    r = results.get("mip_tiny")
    if r is not None:
        if "error" in r:
            L.append(f"[mip_tiny] FAILED {r['error']}")
        else:
            L.append(f"[mip_tiny] correctness: SCIP (exact.solve_mip) vs solve_dual, n={r['n']:,} drawn from {r['drawn_from']:,}")
            L.append(f"    dual {r['dual']['objective']:.8f} ({r['dual_s']:.3f} s)  SCIP {r['mip']['objective']:.8f} "
                     f"({r['mip']['status']}, {r['mip_s']:.1f} s)  (SCIP - dual)/SCIP = {r['mip_minus_dual_rel']:.2e}  "
                     f"dual below SCIP bound by {r['dual_vs_mip_bound_rel']:.2e}")
            L.append(f"    CP-SAT {r['cpsat']['objective']:.8f} ({r['cpsat']['status']}, {r['cpsat_s']:.1f} s, "
                     f"{r['cpsat_vs_dual_time_ratio']:.0f}x the dual's time)  (CP-SAT - dual)/CP-SAT = {r['cpsat_minus_dual_rel']:.2e}")
    return L


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="divide every size by 100 (smoke run)")
    ap.add_argument("--sizes", default="", help="overrides, e.g. big=2000000,mid=200000,small=20000,tiny=2000")
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--roi-factor", type=float, default=1.5, help="min_roi = factor x budget-only ROI")
    ap.add_argument("--both-factor", type=float, default=1.1,
                    help="min_roi factor of the extra case where budget and ROI both bind")
    ap.add_argument("--only", default="", help="comma-separated subset of cases to run")
    ap.add_argument("--out", default=None, help="JSON report path (default reports/bench_allocation[_quick].json)")
    # internal: one measured case in this (child) process
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--n-sub", type=int, default=2000, help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.case:
        out = run_case(args)
        with open(args.result, "w") as f:
            json.dump(out, f, default=float)
        return 0

    sizes = dict(SIZES)
    if args.quick:
        sizes = {k: max(20, v // 100) for k, v in sizes.items()}
    for item in filter(None, args.sizes.split(",")):
        k, v = item.split("=")
        if k not in sizes:
            raise SystemExit(f"--sizes: unknown size {k!r}; expected one of {', '.join(sizes)}")
        sizes[k] = int(float(v))
    info = machine()
    print(f"promo-opt allocation benchmark  {time.strftime('%Y-%m-%d %H:%M:%S')}  argv: {' '.join(sys.argv[1:]) or '(default)'}")
    print(f"machine: nproc={info['nproc']} (affinity {info['affinity']}), {info['cpu']}, {info['mem_total_gb']:.1f} GB, "
          f"load avg {', '.join(f'{x:.2f}' for x in info['loadavg_at_start'])}")
    print(f"python {info['python']}, numpy {info['numpy']}, ortools {info['ortools']}, BLAS "
          + "; ".join(f"{b['internal_api']} {b['version']} ({b['num_threads']} threads)" for b in info["blas"]))
    print(f"sizes: {sizes}  seed {args.seed}  roi factor {args.roi_factor}  both-bind factor {args.both_factor}")
    print(f"pass count of solve_dual's reduced path: {PASSES_REDUCED} "
          "(4 corner argmax choices + 1 dual_value bound + 1 evaluation in finish)\n", flush=True)

    plan_ = [("dual_roi", sizes["big"], {}), ("dual_budget", sizes["big"], {}), ("frontier", sizes["big"], {}),
             ("exact_mid", sizes["mid"], {}), ("exact_small", sizes["small"], {}),
             ("mip_tiny", sizes["mid"], {"n_sub": sizes["tiny"]}), ("dual_both_bind", sizes["mid"], {})]
    only = set(filter(None, args.only.split(",")))
    results = {}
    t_all = time.perf_counter()
    for case, n, extra in plan_:
        if only and case not in only:
            continue
        print(f"... {case} (n={n:,})", flush=True)
        results[case] = spawn(case, n, args, **extra)
        print("\n".join(report({case: results[case]}, info)), flush=True)
    total = time.perf_counter() - t_all
    print(f"\n===== summary (total {total:.0f} s) =====")
    print("\n".join(report(results, info)))

    out_path = Path(args.out) if args.out else ROOT / "reports" / ("bench_allocation_quick.json" if args.quick
                                                                  else "bench_allocation.json")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"date": time.strftime("%Y-%m-%dT%H:%M:%S"), "argv": sys.argv[1:], "machine": info, "sizes": sizes,
               "seed": args.seed, "roi_factor": args.roi_factor, "both_factor": args.both_factor,
               "passes_reduced_path": PASSES_REDUCED, "total_s": total, "results": results}
    fd, tmp = tempfile.mkstemp(dir=out_path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(payload, f, indent=2, default=float)
    os.replace(tmp, out_path)
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
