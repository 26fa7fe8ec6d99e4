"""Uplift learners on public randomized campaigns: per-arm Qini, AUUC and uplift@30% by K-fold CV.

Datasets (../shared/data, see each SOURCE.md):
  hillstrom  64,000 customers; arms No E-Mail (control), Mens E-Mail, Womens E-Mail; outcomes
             ``conversion`` and ``visit``;
  artea      5,000 customers; arms control, coupon; outcome ``trans_after``.

For each dataset and outcome, stratified K-fold cross-validation (default 5 folds, seed 0):
every learner is fitted on the training folds and predicts the held-out fold; the metrics are
computed per arm (vs control) on the pooled out-of-fold predictions (sklift's Qini coefficient,
AUUC, uplift@30%), with the standard deviation over folds of the per-fold Qini.

Compared in the same run:
  * every registry learner, fitted once per training fold (no inner cross-fitting: the product's
    calibration is monotone in the uplift, so it does not change these rank metrics);
  * ``auto``: the product's selection (``select_learner``, 5 inner folds as the product's default
    ``model.folds``) run inside each training fold, then its choice predicts the held-out fold (the
    honest way to score auto);
  * causalml's own meta-learners with default LightGBM bases (``LGBMClassifier()``), the best of
    which is reported as "causalml best (defaults)";
  * scikit-uplift baselines per arm: ``TwoModels`` (vanilla) and ``ClassTransformation``, each
    on default ``LGBMClassifier()``.

Writes reports/real_data.json, reports/real_data.md and reports/real_data_<dataset>_<outcome>_<arm>.png
(Qini curves). The machine is shared: seconds are indicative only.

    nice .venv/bin/python benchmarks/real_data.py [--datasets hillstrom,artea] [--folds 5] [--learners a,b]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from promo_opt.data import write_bytes, write_json  # noqa: E402
from promo_opt.evaluation.metrics import arm_metrics, mean_qini, qini_curves  # noqa: E402
from promo_opt.features import FeaturePreprocessor  # noqa: E402
from promo_opt.learners import LEARNERS, learner_names, make_learner, select_learner  # noqa: E402
from promo_opt.features import numeric_matrix  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
log = logging.getLogger("real_data")


# --------------------------------------------------------------------------------------------
# datasets: (X, arm (0 = control), y, arm_names, arm_terms)
# --------------------------------------------------------------------------------------------
def hillstrom(outcome: str, data_dir: Path = DATA):
    df = pd.read_csv(data_dir / "hillstrom" / "hillstrom.csv")
    names = ["No E-Mail", "Mens E-Mail", "Womens E-Mail"]
    arm = df["segment"].map({n: i for i, n in enumerate(names)}).to_numpy()
    X = df[["recency", "history_segment", "history", "mens", "womens", "zip_code", "newbie", "channel"]]
    terms = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])  # an e-mail costs a send, no discount
    return X, arm, df[outcome].to_numpy(dtype=np.int64), names, terms


def artea(outcome: str = "trans_after", data_dir: Path = DATA, count: bool = False):
    """``count``: the outcome as it is (transactions, 0-5; data.outcome_type count), else bought or not."""
    df = pd.read_csv(data_dir / "artea" / "artea-a_b-experiment-recoded.csv", encoding="utf-8-sig")
    names = ["control", "coupon"]
    arm = df["test_coupon"].map({n: i for i, n in enumerate(names)}).to_numpy()
    X = df[["channel_acq", "num_past_purch", "spent_last_purchase", "weeks_since_visit", "browsing_minutes",
            "shopping_cart"]]
    terms = np.array([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # the coupon's cost per conversion (relative)
    y = df[outcome].to_numpy()
    return X, arm, (y.astype(np.float64) if count else (y > 0).astype(np.int64)), names, terms


DATASETS = {"hillstrom": [("conversion", lambda: hillstrom("conversion")), ("visit", lambda: hillstrom("visit"))],
            "artea": [("trans_after", artea), ("trans_after_count", lambda: artea(count=True))]}
COUNT_OUTCOMES = {"trans_after_count"}  # data.outcome_type count: the LightGBM learners with a Poisson objective


# --------------------------------------------------------------------------------------------
# baselines: each a function (Z_train, arm, y, Z_test, n_arms) -> uplift matrix (n_test, K), column 0 = 0
# --------------------------------------------------------------------------------------------
def _lgbm_default(seed):
    return lgb.LGBMClassifier(verbose=-1, n_jobs=2, random_state=seed)


def sklift_two_models(Ztr, arm, y, Zte, n_arms, seed):
    from sklift.models import TwoModels

    M, Mt = numeric_matrix(Ztr), numeric_matrix(Zte)
    out = np.zeros((len(Mt), n_arms))
    for k in range(1, n_arms):
        on = (arm == 0) | (arm == k)
        m = TwoModels(estimator_trmnt=_lgbm_default(seed), estimator_ctrl=_lgbm_default(seed), method="vanilla")
        m.fit(M[on], y[on], (arm[on] == k).astype(int))
        out[:, k] = m.predict(Mt)
    return out


def sklift_class_transformation(Ztr, arm, y, Zte, n_arms, seed):
    from sklift.models import ClassTransformation

    M, Mt = numeric_matrix(Ztr), numeric_matrix(Zte)
    out = np.zeros((len(Mt), n_arms))
    for k in range(1, n_arms):
        on = (arm == 0) | (arm == k)
        m = ClassTransformation(estimator=_lgbm_default(seed))
        m.fit(M[on], y[on], (arm[on] == k).astype(int))
        out[:, k] = m.predict(Mt)
    return out


def causalml_default(kind):
    def fit_predict(Ztr, arm, y, Zte, n_arms, seed):
        from causalml.inference import meta

        M, Mt = numeric_matrix(Ztr), numeric_matrix(Zte)
        if kind == "s":
            m = meta.BaseSClassifier(learner=_lgbm_default(seed))
        elif kind == "t":
            m = meta.BaseTClassifier(learner=_lgbm_default(seed))
        else:
            m = meta.BaseXClassifier(outcome_learner=_lgbm_default(seed),
                                     effect_learner=lgb.LGBMRegressor(verbose=-1, n_jobs=2, random_state=seed))
        shares = np.bincount(arm, minlength=n_arms) / len(arm)
        p = {k: np.full(len(arm), shares[k] / (shares[0] + shares[k])) for k in range(1, n_arms)}
        pt = {k: np.full(len(Mt), shares[k] / (shares[0] + shares[k])) for k in range(1, n_arms)}
        m.fit(M, arm, y, **({"p": p} if kind == "x" else {}))
        tau = m.predict(Mt, verbose=False, **({"p": pt} if kind == "x" else {}))
        return np.column_stack([np.zeros(len(Mt)), np.asarray(tau).reshape(len(Mt), n_arms - 1)])
    return fit_predict


BASELINES = {"sklift_two_models": sklift_two_models, "sklift_class_transformation": sklift_class_transformation,
             "causalml_s_default": causalml_default("s"), "causalml_t_default": causalml_default("t"),
             "causalml_x_default": causalml_default("x")}


# --------------------------------------------------------------------------------------------
def run_dataset(X, arm, y, arm_names, terms, methods, folds, seed, auto_folds=5, outcome_type="binary"):
    n, K = len(y), len(arm_names)
    if outcome_type != "binary":  # the baselines are binary classifiers; causalml's learners here too
        methods = [m for m in methods if m == "auto" or (m not in BASELINES and outcome_type in LEARNERS[m].outcomes)]
    pre = FeaturePreprocessor().fit(X)  # fitted on all rows: it only learns column types and levels
    Z = pre.transform(X)
    oof = {m: np.zeros((n, K)) for m in methods}
    fold_id = np.zeros(n, dtype=np.int64)
    secs = {m: 0.0 for m in methods}
    auto_choice = []
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for f, (tr, te) in enumerate(skf.split(np.zeros(n), arm * 2 + (y > 0))):
        fold_id[te] = f
        for m in methods:
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if m == "auto":
                    fitted, rep = select_learner(Z.iloc[tr], arm[tr], y[tr], K, terms, learner="auto", folds=auto_folds,
                                                 seed=seed + f, arm_names=arm_names, outcome_type=outcome_type)
                    auto_choice.append(rep.chosen)
                    p = fitted[rep.chosen].predict_proba(Z.iloc[te])
                elif m in BASELINES:
                    p = BASELINES[m](Z.iloc[tr], arm[tr], y[tr], Z.iloc[te], K, seed + f)
                else:
                    p = make_learner(m, K, terms, seed + f, outcome_type).fit(Z.iloc[tr], arm[tr], y[tr]).predict_proba(
                        Z.iloc[te])
            oof[m][te] = p
            secs[m] += time.perf_counter() - t0
            log.info("fold %d/%d %-28s %.1fs", f + 1, folds, m, time.perf_counter() - t0)
    rows = {}
    for m in methods:
        pooled = arm_metrics(oof[m], arm, y, arm_names)
        per_fold = [arm_metrics(oof[m][fold_id == f], arm[fold_id == f], y[fold_id == f], arm_names)
                    for f in range(folds)]
        for a in pooled:
            q = np.array([pf[a]["qini"] for pf in per_fold])
            pooled[a]["qini_fold_sd"] = float(np.nanstd(q, ddof=1))
        rows[m] = {"arms": pooled, "mean_qini": mean_qini(pooled), "seconds": secs[m],
                   "fold_mean_qini": [mean_qini(pf) for pf in per_fold]}
    curves = {m: qini_curves(oof[m], arm, y, arm_names) for m in methods}
    return rows, curves, auto_choice


def qini_png(curves: dict, methods: list[str], arm: str, title: str) -> bytes:
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for m in methods:
        c = curves[m].get(arm)
        if c:
            ax.plot(c["fraction"], c["qini"], label=m, lw=1.4)
    c = next(curves[m][arm] for m in methods if arm in curves[m])
    ax.plot([0, 1], [0, c["qini"][-1]], "k--", lw=1, label="random")
    ax.set_xlabel("share of users targeted (ranked by predicted uplift)")
    ax.set_ylabel("incremental outcomes (Qini)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def markdown(results: dict, args) -> str:
    lines = ["# Uplift learners on public randomized campaigns", "",
             "Generated by `nice .venv/bin/python benchmarks/real_data.py` (the command of each table is above it). "
             " Stratified K-fold cross-validation; metrics per arm against the "
             "control on the pooled out-of-fold predictions: Qini coefficient (sklift `qini_auc_score`: 1 = perfect "
             "ranking, 0 = random), AUUC (sklift `uplift_auc_score`), uplift@30% (treated minus control rate among "
             "the top 30%). `sd` = standard deviation of the per-fold Qini. Seconds on a shared 2-core machine "
             "(other sessions running): indicative only.", ""]
    for key, r in results.items():
        arms = list(next(iter(r["rows"].values()))["arms"])
        lines += [f"## {key}", "", f"`{r.get('command', '')}`: {r.get('folds', '')}-fold CV, {r['n']:,} rows. "
                  f"auto chose per outer fold: {', '.join(r['auto_choice']) or '-'}", ""]
        head = "| learner | mean Qini | " + " | ".join(f"{a}: Qini (sd) | AUUC | uplift@30%" for a in arms) + " | seconds |"
        lines += [head, "|" + "---|" * (3 + 3 * len(arms))]
        order = sorted(r["rows"], key=lambda m: -np.nan_to_num(r["rows"][m]["mean_qini"], nan=-9))
        for m in order:
            row = r["rows"][m]
            cells = []
            for a in arms:
                x = row["arms"][a]
                cells.append(f"{x['qini']:.4f} ({x['qini_fold_sd']:.3f}) | {x['auuc']:.5f} | {x['uplift_at_k']:.4f}")
            lines.append(f"| {m} | {row['mean_qini']:.4f} | " + " | ".join(cells) + f" | {row['seconds']:.0f} |")
        best_cml = max((m for m in r["rows"] if m.startswith("causalml_") and m.endswith("_default")),
                       key=lambda m: r["rows"][m]["mean_qini"], default=None)
        if best_cml and "auto" in r["rows"]:
            lines += ["", f"auto mean Qini {r['rows']['auto']['mean_qini']:.4f} vs causalml best (defaults) "
                      f"{best_cml} {r['rows'][best_cml]['mean_qini']:.4f}; best overall "
                      f"{order[0]} {r['rows'][order[0]]['mean_qini']:.4f}."]
        # whether or not causalml's defaults ran (they are binary classifiers: not on count outcomes)
        best_single = max((m for m in r["rows"] if m in learner_names()), key=lambda m: r["rows"][m]["mean_qini"],
                          default=None)
        fa = (r["rows"].get("auto") or {}).get("fold_mean_qini")
        fb = (r["rows"].get(best_single) or {}).get("fold_mean_qini")
        if fa and fb:
            d = np.asarray(fa) - np.asarray(fb)
            se = d.std(ddof=1) / np.sqrt(d.size)
            lines += ["", f"auto minus the best single learner ({best_single}, picked after the fact), paired by "
                      f"outer fold: {d.mean():+.4f} mean Qini, standard error {se:.4f} "
                      f"({'within' if d.mean() >= -2 * se else 'outside'} 2 standard errors)."]
        lines += ["", *[f"![Qini {key} {a}](real_data_{key}_{a.replace(' ', '_')}.png)" for a in arms], ""]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default="hillstrom,artea")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--learners", default=None, help="comma-separated registry learners (default: all)")
    ap.add_argument("--outcomes", default=None, help="comma-separated outcomes (default: all of each dataset)")
    ap.add_argument("--baselines", default=None, help=f"comma-separated baselines (default: all of {list(BASELINES)})")
    ap.add_argument("--auto-folds", type=int, default=5,
                    help="inner folds of auto's selection (default: the product's model.folds; fewer is faster "
                         "but fits each cross-fitted model on fewer rows)")
    ap.add_argument("--out", default=str(ROOT / "reports" / "real_data"))
    ap.add_argument("--merge", action="store_true", help="keep the other datasets' results already in --out")
    ap.add_argument("--combine", default=None, help="comma-separated result JSON files: only write the merged note")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for noisy in ("causalml", "promo_opt"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    out = Path(args.out)
    if args.combine:  # render one note from the results of several runs (e.g. run in parallel)
        results = {}
        for f in args.combine.split(","):
            results.update(json.loads(Path(f).read_text())["results"])
        write_json({"command": " ".join(sys.argv), "results": results}, out.with_suffix(".json"))
        write_bytes(markdown(results, args).encode(), out.with_suffix(".md"))
        print(markdown(results, args))
        return
    learners = args.learners.split(",") if args.learners else learner_names()
    baselines = args.baselines.split(",") if args.baselines else list(BASELINES)
    methods = ["auto", *learners, *baselines]
    results = {}
    if args.merge and out.with_suffix(".json").is_file():  # keep the other datasets' earlier results
        results = json.loads(out.with_suffix(".json").read_text())["results"]
    for ds in args.datasets.split(","):
        for outcome, load in DATASETS[ds]:
            if args.outcomes and outcome not in args.outcomes.split(","):
                continue
            X, arm, y, names, terms = load()
            key = f"{ds}_{outcome}"
            log.info("%s: %d rows, arms %s, outcome rate %.4f", key, len(y), names, y.mean())
            rows, curves, choice = run_dataset(X, arm, y, names, terms, methods, args.folds, args.seed, args.auto_folds,
                                               outcome_type="count" if outcome in COUNT_OUTCOMES else "binary")
            results[key] = {"n": int(len(y)), "arms": names, "rows": rows, "auto_choice": choice, "folds": args.folds,
                            "command": "nice .venv/bin/python " + " ".join(sys.argv)}
            show = ["auto", max((m for m in rows if m != "auto"), key=lambda m: rows[m]["mean_qini"]),
                    "causalml_x_default", "sklift_two_models", "sklift_class_transformation"]
            show = [m for m in dict.fromkeys(show) if m in rows]
            for a in names[1:]:
                write_bytes(qini_png(curves, show, a, f"{ds} / {outcome}: {a} vs {names[0]}"),
                            out.parent / f"real_data_{key}_{a.replace(' ', '_')}.png")
            write_json({"command": " ".join(sys.argv), "folds": args.folds, "seed": args.seed, "results": results},
                       out.with_suffix(".json"))
    write_bytes(markdown(results, args).encode(), out.with_suffix(".md"))
    print(markdown(results, args))


if __name__ == "__main__":
    main()
