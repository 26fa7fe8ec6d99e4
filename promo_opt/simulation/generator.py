"""Worlds no one tuned to: a random world per seed, for measuring the product over many of them.

The hand-written worlds in ``scenarios/`` are three stories; a learner, a default or a forecast
correction that wins there may simply fit those stories. :func:`random_world` draws the
*structure* of a world from a seed, within ranges that real promotion campaigns span:

* features: 3-12, of every kind (normal, lognormal, uniform, Poisson counts, categoricals with
  2-12 levels), some pure noise, some with missing values;
* arms: 1-4 promotions of mixed kinds (percentage discounts, vouchers paid on conversion, send
  costs), of increasing strength;
* base rate: 0.5%-25% conversion (binary), 0.05-2 orders per user (count), 1%-20% buyers (amount);
* effect shapes: 2-4 latent user types whose membership depends on linear terms, steps and
  interactions of random features; per type a lift that grows with the promotion's strength
  (responders), about nothing (would buy anyway), or a small negative lift (annoyed by offers);
  effect sizes from barely detectable to strong;
* order value: lognormal with random dependence on the features;
* drift (a third of the worlds): candidates shifted in some features and, in half of those, in
  the base rate itself (a change no feature shows);
* outcome type: binary (60%), count (25%), amount (15%);
* campaign: objective conversions or net revenue, a budget of 10%-50% of the all-in spend.

The truth of every world is known (:class:`~promo_opt.simulation.world.World`), so the share of
the oracle, forecast errors and interval coverage are exact.
"""

from __future__ import annotations

import numpy as np

from promo_opt.simulation.world import World, parse_world


def _score(rng: np.random.Generator, numeric: list[dict], categorical: list[dict], scale: float,
           n_terms: int) -> dict:
    """A random linear score on a few features, with steps and an interaction, of size ~``scale``."""
    out: dict = {"intercept": 0.0, "linear": {}, "levels": {}, "steps": [], "interactions": []}
    picks = rng.permutation(len(numeric) + len(categorical))[:n_terms]
    for j in picks:
        if j < len(numeric):
            f = numeric[j]
            sd = f["_sd"]
            if rng.random() < 0.35:  # a threshold effect
                out["steps"].append({"feature": f["name"], "above": float(f["_mid"] + rng.normal(0, 0.5) * sd),
                                     "coef": float(rng.normal(0, scale))})
            else:  # centred on the feature's typical value, so the intercept keeps the base level
                c = float(rng.normal(0, scale) / sd)
                out["linear"][f["name"]] = out["linear"].get(f["name"], 0.0) + c
                out["intercept"] -= c * f["_mid"]
        else:
            f = categorical[j - len(numeric)]
            out["levels"][f["name"]] = {lv: float(rng.normal(0, scale)) for lv in list(f["levels"])[1:]}
    if len(numeric) >= 2 and rng.random() < 0.4:
        a, b = rng.choice(len(numeric), 2, replace=False)
        fa, fb = numeric[a], numeric[b]
        c = float(rng.normal(0, scale) / (fa["_sd"] * fb["_sd"]))  # c (xa - ma)(xb - mb), expanded
        out["interactions"].append({"factors": [fa["name"], fb["name"]], "coef": c})
        for f, other in ((fa, fb), (fb, fa)):
            out["linear"][f["name"]] = out["linear"].get(f["name"], 0.0) - c * other["_mid"]
        out["intercept"] += c * fa["_mid"] * fb["_mid"]
    return out


def _features(rng: np.random.Generator) -> tuple[list[dict], list[dict], list[dict]]:
    n = int(rng.integers(3, 13))
    feats, numeric, categorical = [], [], []
    for i in range(n):
        kind = rng.choice(["normal", "lognormal", "uniform", "poisson", "categorical"], p=[.25, .2, .15, .15, .25])
        name = f"x{i + 1:02d}"
        miss = float(rng.choice([0.0, 0.0, 0.0, rng.uniform(0.01, 0.15)]))
        if kind == "normal":
            m, s = float(rng.normal(0, 20)), float(rng.uniform(0.5, 15))
            f = {"name": name, "kind": "normal", "mean": m, "std": s, "_sd": s, "_mid": m}
        elif kind == "lognormal":
            mu, sg = float(rng.uniform(0, 5)), float(rng.uniform(0.2, 1.0))
            f = {"name": name, "kind": "lognormal", "mu": mu, "sigma": sg, "decimals": 2,
                 "_sd": float(np.exp(mu) * sg), "_mid": float(np.exp(mu))}
        elif kind == "uniform":
            lo = float(rng.normal(0, 5))
            hi = lo + float(rng.uniform(1, 20))
            f = {"name": name, "kind": "uniform", "low": lo, "high": hi, "_sd": (hi - lo) / 3.46, "_mid": (lo + hi) / 2}
        elif kind == "poisson":
            lam = float(rng.uniform(0.3, 8))
            f = {"name": name, "kind": "poisson", "lam": lam, "_sd": float(np.sqrt(lam)), "_mid": lam}
        else:
            k = int(rng.integers(2, 13))
            p = rng.dirichlet(np.full(k, 2.0))
            p = np.round(p / p.sum(), 6)
            p[-1] = 1.0 - p[:-1].sum()
            f = {"name": name, "kind": "categorical", "levels": {f"l{j}": float(p[j]) for j in range(k)}}
        if miss:
            f["missing_rate"] = round(miss, 3)
        feats.append(f)
        (categorical if kind == "categorical" else numeric).append(f)
    return feats, numeric, categorical


def _arms(rng: np.random.Generator) -> list[dict]:
    arms = [{"name": "control", "control": True}]
    k = int(rng.integers(1, 5))
    kind = rng.choice(["discount", "voucher", "mixed"])
    strengths = np.sort(rng.uniform(0.03, 0.35, k))
    for j, s in enumerate(strengths):
        kj = kind if kind != "mixed" else rng.choice(["discount", "voucher"])
        arm = {"name": f"promo{j + 1}"}
        if kj == "discount":
            arm["discount"] = round(float(s), 3)
        else:  # a voucher: a fixed amount, of the order of the value it is meant to move
            arm["cost_per_conversion"] = round(float(s * rng.uniform(20, 150)), 2)
        if rng.random() < 0.3:
            arm["cost_per_send"] = round(float(rng.uniform(0.01, 0.5)), 3)
        arms.append(arm)
    return arms


def world_spec(seed: int) -> dict:
    """The raw world mapping (see :mod:`promo_opt.simulation.world`) of generated world ``seed``."""
    rng = np.random.default_rng([seed, 16_2026])
    outcome = str(rng.choice(["binary", "count", "amount"], p=[0.6, 0.25, 0.15]))
    feats, numeric, categorical = _features(rng)
    arms = _arms(rng)
    promos = [a["name"] for a in arms[1:]]
    strength = np.linspace(1.0, 1.0 + 0.6 * (len(promos) - 1), len(promos))
    strength = strength / strength[-1]  # the strongest promotion gets the full lift

    if outcome == "count":
        base_level = float(np.log(rng.uniform(0.05, 2.0)))
    elif outcome == "amount":
        base_level = float(np.log(p := rng.uniform(0.01, 0.2)) - np.log(1 - p))
    else:
        base_level = float(np.log(p := np.exp(rng.uniform(np.log(0.005), np.log(0.25)))) - np.log(1 - p))
    base = _score(rng, numeric, categorical, scale=0.4, n_terms=int(rng.integers(1, 5)))
    base["intercept"] += base_level

    n_types = int(rng.integers(2, 5))
    effect = float(np.exp(rng.uniform(np.log(0.15), np.log(1.6))))  # logit lift of the responders
    types = []
    for t in range(n_types):
        role = "responder" if t == 0 else str(rng.choice(["responder", "anyway", "annoyed"], p=[0.35, 0.45, 0.2]))
        lift = {"responder": effect * rng.uniform(0.4, 1.0), "anyway": rng.uniform(0.0, 0.05),
                "annoyed": -rng.uniform(0.05, 0.3)}[role]
        score = _score(rng, numeric, categorical, scale=1.0, n_terms=int(rng.integers(1, 4)))
        score["intercept"] += float(rng.normal(0, 0.7))
        types.append({"name": f"type{t + 1}_{role}", "score": score,
                      "base_lift": float(rng.normal(0, 0.3) + (0.4 if role == "anyway" else 0.0)),
                      "arm_lift": {a: float(lift * s) for a, s in zip(promos, strength)}})
    value = _score(rng, numeric, categorical, scale=0.15, n_terms=int(rng.integers(1, 4)))
    value["intercept"] += float(rng.uniform(2.5, 5.5))

    drift: dict = {}
    if rng.random() < 1 / 3 and numeric:
        f = numeric[int(rng.integers(len(numeric)))]
        drift["shift"] = {f["name"]: float(rng.choice([-1, 1]) * rng.uniform(0.2, 0.8) * (
            f["_sd"] if f["kind"] not in ("lognormal",) else f["sigma"]))}
        if f["kind"] == "poisson":
            drift["shift"][f["name"]] = float(max(-0.8 * f["lam"], drift["shift"][f["name"]]))
        if rng.random() < 0.5:
            drift["logit_shift"] = float(rng.choice([-1, 1]) * rng.uniform(0.1, 0.4))
    objective = "net_revenue" if rng.random() < 0.35 else "conversions"
    clean = [{k: v for k, v in f.items() if not k.startswith("_")} for f in feats]
    return {
        "name": f"generated_{seed}",
        "description": f"generated world {seed}: {len(feats)} features, {len(promos)} promotions, {outcome} outcome"
                       + (", drifted candidates" if drift else ""),
        "seed": int(seed),
        "features": clean,
        "arms": arms,
        "base": base,
        "types": types,
        "order_value": {"score": value, "sigma": float(rng.uniform(0.1, 0.5))},
        "drift": drift,
        "outcome_type": outcome,
        "campaign": {"objective": objective, "budget_fraction": float(np.round(rng.uniform(0.1, 0.5), 3)),
                     "holdout_fraction": 0.05},
    }


def random_world(seed: int) -> World:
    """Generated world ``seed`` (validated like any world YAML)."""
    return parse_world(world_spec(seed), source=f"generated world {seed}")
