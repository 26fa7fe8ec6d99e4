"""Observational causal tools: when the past promotions were not randomized.

``propensity`` (multi-arm, calibrated, overlap diagnostics), ``balance`` (standardized mean
differences), ``matching`` (propensity score matching, Abadie-Imbens standard errors),
``weighting`` (naive difference, IPW, AIPW), ``did`` (difference-in-differences, event study),
``fusion`` (logged data corrected by a small randomized sample), ``effect`` (the typed entry
point used by the CLI), ``report`` (HTML with balance tables and plots).
"""
