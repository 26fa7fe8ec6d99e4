"""Long-term value: a dynamic causal model of what a promotion does over the following weeks.

A system of regularized linear regressions over a weekly customer panel (each surrogate and the
outcome on the lags of every variable, the arm this week and lagged, the controls and optional
same-period parents), shocks propagated through it over a horizon, Shapley attribution of a
value across surrogate groups, and bootstrap-by-customer intervals on every valuation.
"""
