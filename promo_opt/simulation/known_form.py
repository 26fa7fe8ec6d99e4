"""A learner that knows a simulated world's form: the reference for how much a past campaign can teach.

The product's learners know nothing of a world's response model; this one is handed all of it except the
numbers: which features enter the base rate, the latent user types and their membership scores (terms,
thresholds, interactions), which types respond to which promotion, and the features before they went missing
(the logging propensities are not needed: the likelihood conditions on the arm). It fits every coefficient
by maximum likelihood on the past campaign, started at the truth, and predicts each candidate's outcome
under every arm. A general-purpose learner cannot be expected to beat it where the fit is well determined;
the share of the oracle its policy reaches measures what the past campaign's rows allow once the cost of
not knowing the form is taken away. With few rows and several latent types the likelihood can be nearly
flat in some directions and the fit wander off (``converged``, ``iterations`` say so).

Response model (:mod:`promo_opt.simulation.world`): ``eta_k(x) = base(x) + sum_t pi_t(x) (b_t + l_tk)``,
``pi = softmax(score_t(x))``; binary and amount outcomes (whether the user buys) are Bernoulli with logit
``eta``, counts Poisson with log rate ``eta``. Every score is linear in a fixed design of its terms, so the
negative log-likelihood's gradient is analytic (:func:`fit`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from promo_opt.simulation.world import Score, SimulatedSample, World, softmax, score_terms


def design(score: Score, latent: dict[str, np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, p) design of a score's terms at ``latent`` values (:func:`~promo_opt.simulation.world.score_terms`,
    after a column of ones) and (p,) the score's true coefficients."""
    terms = score_terms(score, latent)
    columns = [np.ones(n)] + [np.asarray(c, dtype=np.float64) for c, _ in terms]
    return np.column_stack(columns), np.asarray([score.intercept] + [coef for _, coef in terms], dtype=np.float64)


@dataclass
class KnownForm:
    """The fitted coefficients of a world's response model (:func:`fit`)."""

    world: World
    base: np.ndarray
    types: list[np.ndarray]
    base_lift: np.ndarray  # (T,)
    arm_lift: np.ndarray  # (T, K), column 0 (control) zero
    converged: bool
    iterations: int

    def eta(self, latent: dict[str, np.ndarray], n: int) -> np.ndarray:
        """(n, K) the fitted logit (or log rate) of every user under every arm."""
        spec = self.world.spec
        b = design(spec.base, latent, n)[0] @ self.base
        pi = softmax(np.column_stack([design(t.score, latent, n)[0] @ th for t, th in zip(spec.types, self.types)]))
        return b[:, None] + pi @ (self.base_lift[:, None] + self.arm_lift)

    def predict(self, sample: SimulatedSample) -> np.ndarray:
        """(n, K) expected outcome under each arm for ``sample``'s users, in ``sample.true_p``'s units (the
        order value, arm-independent, taken from the truth for amounts)."""
        eta = self.eta(sample.latent, len(sample.true_value))
        kind = self.world.spec.outcome_type
        if kind == "count":
            return np.exp(np.clip(eta, -30.0, 3.0))
        p = 1.0 / (1.0 + np.exp(-np.clip(eta, -30.0, 30.0)))
        return p * sample.order_value[:, None] if kind == "amount" else p


def fit(world: World, train: SimulatedSample, arm: np.ndarray, y: np.ndarray, max_iter: int = 500) -> KnownForm:
    """Maximum likelihood of the world's response model on a past campaign (``arm``: arm index per user,
    ``y``: the outcome; for amounts, whether the user bought), started at the true coefficients. Columns
    are scaled to unit spread for the optimizer (L-BFGS, analytic gradient)."""
    spec, n = world.spec, len(arm)
    K, T = len(world.arm_names), len(spec.types)
    Db, tb = design(spec.base, train.latent, n)
    Dt, tt = zip(*(design(t.score, train.latent, n) for t in spec.types))
    scale = [np.where(np.arange(D.shape[1]) == 0, 1.0, np.maximum(D.std(axis=0), 1e-12)) for D in (Db, *Dt)]
    Db, Dt = Db / scale[0], [D / s for D, s in zip(Dt, scale[1:])]
    lift0 = np.array([[t.arm_lift.get(a, 0.0) for a in world.arm_names[1:]] for t in spec.types])
    bl0 = np.array([t.base_lift for t in spec.types])
    sizes = [Db.shape[1]] + [D.shape[1] for D in Dt] + [T, T * (K - 1)]
    cuts = np.cumsum(sizes)[:-1]
    x0 = np.concatenate([tb * scale[0], *(t * s for t, s in zip(tt, scale[1:])), bl0, lift0.ravel()])
    count = spec.outcome_type == "count"
    onehot = np.eye(K)[arm][:, 1:]  # (n, K-1)

    def unpack(x):
        parts = np.split(x, cuts)
        return parts[0], parts[1:1 + T], parts[1 + T], parts[2 + T].reshape(T, K - 1)

    def nll(x):
        thb, tht, bl, al = unpack(x)
        pi = softmax(np.column_stack([D @ th for D, th in zip(Dt, tht)]))  # (n, T)
        c = bl[None, :] + onehot @ al.T  # (n, T): each type's lift under the user's arm
        eta = Db @ thb + (pi * c).sum(axis=1)
        if count:
            mu = np.exp(np.clip(eta, -30.0, 30.0))
            f, g = float(np.sum(mu - y * eta)), mu - y
        else:
            f = float(np.sum(np.logaddexp(0.0, eta) - y * eta))
            g = 1.0 / (1.0 + np.exp(-np.clip(eta, -30.0, 30.0))) - y
        cbar = (pi * c).sum(axis=1, keepdims=True)
        w = g[:, None] * pi  # (n, T)
        grad = [Db.T @ g, *(D.T @ (w[:, t] * (c[:, t] - cbar[:, 0])) for t, D in enumerate(Dt)),
                w.sum(axis=0), (w.T @ onehot).ravel()]
        return f / n, np.concatenate(grad) / n

    res = minimize(nll, x0, jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    thb, tht, bl, al = unpack(res.x)
    return KnownForm(world, thb / scale[0], [t / s for t, s in zip(tht, scale[1:])], bl,
                     np.column_stack([np.zeros(T), al]), bool(res.success), int(res.nit))
