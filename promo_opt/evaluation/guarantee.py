"""Guarantee mode: an ROI floor that holds with a stated probability (``constraints.min_roi_confidence``).

The allocator meets the floor in *expectation under the model*: expected incremental revenue R
over expected spend S is at least the floor m. The truth differs from the model by the ratios
realized/expected that the held-out twin measured (:mod:`promo_opt.evaluation.heldout`): true
revenue ~ rho_R R and true spend ~ rho_S S, with (rho_R, rho_S) approximately normal around the
forecast ratios, with the measured covariance. The floor holds when the margin
``rho_R R - m rho_S S`` is >= 0, so::

    P(floor holds) = Phi(mu / sigma),  mu = r_R R - m r_S S,
    sigma^2 = R^2 V_RR + m^2 S^2 V_SS - 2 m R S V_RS

Without a confidence the allocator's floor is m0 = m r_S / r_R
(:meth:`~promo_opt.evaluation.heldout.ForecastCorrection.allocation_floor`), where mu = 0: the plain
floor holds on the forecast, with P about one half where it binds. For a confidence c the
allocator is run under a raised floor m' >= m0, the smallest m' at which P >= c: P depends on a policy
only through its expected ROI (:func:`guaranteed_roi`), so m' is one number for every budget, and the
budget curve, the slider and the allocation hold the same one. A stricter floor keeps only the users
whose return is clearly above it, which widens the margin faster than it widens sigma. The raised
floor, the achieved probability and that of the plain floor's policy go to ``summary.json``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from promo_opt.errors import GuaranteeRefused, InfeasibleError, UnreachableFloor
from promo_opt.evaluation.heldout import TOTALS, ForecastCorrection


@dataclass
class RoiGuarantee:
    confidence: float  # asked
    achieved: float  # P(true ROI >= min_roi) of the chosen policy
    plain_floor_probability: float  # the same for the policy under the plain floor
    min_roi: float
    allocated_min_roi: float  # the floor the allocator was run with

    def as_dict(self) -> dict:
        return {"confidence": self.confidence, "achieved_probability": self.achieved,
                "plain_floor_probability": self.plain_floor_probability, "min_roi": self.min_roi,
                "allocated_min_roi": self.allocated_min_roi,
                "note": "probability that the true ROI meets min_roi, from the held-out realized/expected ratios "
                        "of revenue and spend and their covariance"}


def floor_probability(revenue: float, spend: float, min_roi: float, correction: ForecastCorrection) -> float:
    """P(true revenue >= min_roi x true spend) for a policy with these expected totals."""
    if spend <= 0:
        return 1.0
    i, j = TOTALS.index("incremental_revenue"), TOTALS.index("spend")
    v = np.asarray(correction.ratio_cov, dtype=np.float64)
    if v.shape != (3, 3):
        raise InfeasibleError("constraints.min_roi_confidence needs the model's held-out measurement "
                              "(retrain with promo-opt train or run; the model has no ratio covariance)")
    mu = correction.ratio["incremental_revenue"] * revenue - min_roi * correction.ratio["spend"] * spend
    var = revenue ** 2 * v[i, i] + (min_roi * spend) ** 2 * v[j, j] - 2 * min_roi * revenue * spend * v[i, j]
    if var <= 0:
        return 1.0 if mu >= 0 else 0.0
    return float(norm.cdf(mu / np.sqrt(var)))


def guaranteed_roi(min_roi: float, confidence: float, correction: ForecastCorrection, start: float) -> float:
    """The smallest expected ROI rho >= ``start`` at which a policy meets ``min_roi`` with probability
    >= ``confidence``.

    The probability depends on a policy only through its expected ROI: divide mu and sigma (module doc)
    by the expected spend S and they are functions of rho = R / S. So one floor on the expected ROI serves
    every budget, which is what lets the budget curve and the slider hold guarantee mode as an allocation
    does. mu / sigma rises with rho towards r_R / sd(rho_R) (it may peak first, then fall towards that
    limit); the search grows rho until the probability is met, then bisects. Raises
    :class:`~promo_opt.errors.InfeasibleError` where no rho up to 2^40 x ``start`` meets it: the held-out
    measurement is too uncertain."""
    def prob(rho):
        return floor_probability(rho, 1.0, min_roi, correction)

    lo = float(start)
    if prob(lo) >= confidence:
        return lo
    step = max(lo, 0.1)
    for _ in range(40):
        if prob(lo + step) >= confidence:
            break
        lo, step = lo + step, step * 2
    else:
        raise GuaranteeRefused(_too_uncertain(confidence, start, min_roi, prob(float(start)), None,
                                              _ceiling(correction)))
    hi = lo + step
    while hi - lo > 1e-6 * max(1.0, hi):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if prob(mid) >= confidence else (mid, hi)
    return hi


def _too_uncertain(confidence: float, start: float, min_roi: float, p0: float, reached: float | None,
                   ceiling: float | None = None) -> str:
    """Why no floor from ``start`` is safe enough: none up to ``reached`` (the floor searched), or, ``reached``
    None, none at all: however high the expected ROI, the probability stays under ``ceiling``."""
    held = " (min_roi held on the forecast)" if abs(start - min_roi) > 1e-9 * max(1.0, abs(min_roi)) else ""
    where = (f"up to {reached:.4g}" if reached is not None else
             f"however high (the probability tends to {ceiling:.2f}: the held-out revenue ratio alone is that "
             "uncertain)")
    return (f"constraints.min_roi_confidence {confidence:g}: no floor on the model's expected ROI from {start:.4g}"
            f"{held} {where} gives a policy whose true ROI meets min_roi {min_roi:g} with that probability (the "
            f"plain floor's policy: {p0:.2f}): the held-out measurement is too uncertain: lower the confidence or "
            "the floor, or train on more past users")


def _ceiling(correction: ForecastCorrection) -> float:
    """The limit of P(floor holds) as the expected ROI grows: mu / sigma tends to r_R / sd(rho_R) (module doc)."""
    i = TOTALS.index("incremental_revenue")
    sd = float(np.sqrt(max(np.asarray(correction.ratio_cov, dtype=np.float64)[i, i], 0.0)))
    return 1.0 if sd == 0 else float(norm.cdf(correction.ratio["incremental_revenue"] / sd))


def out_of_reach(confidence: float, min_roi: float, p0: float | None, needed: float, best: float) -> str:
    """Why no policy is safe enough where the floor the guarantee needs, ``needed``, is above ``best``, the best ROI
    any user x arm reaches; ``p0``: the plain floor's policy's probability, where there is one policy."""
    plain = "" if p0 is None else f" (the plain floor's policy meets min_roi with probability {p0:.2f})"
    return (f"constraints.min_roi_confidence {confidence:g}: to meet min_roi {min_roi:g} with that probability a "
            f"policy needs an expected ROI of at least {needed:.4g} (the held-out measurement's uncertainty), and the "
            f"best any user x arm reaches is {best:.4g}{plain}: lower the confidence, or train on more past users to "
            "narrow the uncertainty")


def guaranteed_floor(solve_at, min_roi: float, confidence: float, correction: ForecastCorrection,
                     start: float | None = None):
    """The allocation under the smallest floor m' >= ``start`` (default ``min_roi``; the plain
    floor the allocator would use) whose policy meets the floor ``min_roi`` with probability >= ``confidence``:
    the plain floor's policy where it is safe enough, else the one under :func:`guaranteed_roi`.

    ``solve_at(m)`` allocates under floor m and returns ``(result, totals)`` (totals as
    ``Economics.totals``). Returns ``(result, totals, RoiGuarantee)``.
    """
    def prob(totals):
        return floor_probability(totals["incremental_revenue"], totals["spend"], min_roi, correction)

    start = min_roi if start is None else start
    base = solve_at(start)
    p0 = prob(base[1])
    if p0 >= confidence:
        return (*base, RoiGuarantee(confidence, p0, p0, min_roi, start))
    floor = guaranteed_roi(min_roi, confidence, correction, start)
    try:
        best = solve_at(floor)
    except UnreachableFloor as err:  # the raised floor is the guarantee's, not the planner's: say what it needs
        raise GuaranteeRefused(out_of_reach(confidence, min_roi, p0, floor, err.best)) from err
    except InfeasibleError as err:
        raise GuaranteeRefused(_too_uncertain(confidence, start, min_roi, p0, floor) + f" ({err})") from err
    achieved = prob(best[1])
    if achieved < confidence - 1e-9:  # the policy's expected ROI rose past where the probability peaks
        raise GuaranteeRefused(_too_uncertain(confidence, start, min_roi, p0, floor))
    return (*best, RoiGuarantee(confidence, achieved, p0, min_roi, floor))
