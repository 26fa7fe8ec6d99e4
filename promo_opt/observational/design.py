"""Numeric design matrices for the linear models and balance tables of ``observational``.

One place turns a feature frame (numbers, text, missing values) into columns a linear model or a
balance table can use: numeric columns with the median imputed and a missing indicator when any
value is missing, text columns one-hot encoded (every level, unknown levels all zero).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from promo_opt.features import FeaturePreprocessor


def typed_features(X: pd.DataFrame) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Numeric columns as float, text columns as categoricals; returns (frame, numeric, categorical)."""
    pre = FeaturePreprocessor().fit(X)
    return pre.transform(X), list(pre.numeric_), list(pre.categorical_)


def linear_encoder(numeric: list[str], categorical: list[str], scale: bool = True) -> ColumnTransformer:
    """sklearn transformer: impute + indicator (+ standardize) numerics, one-hot the categoricals."""
    num = [SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)]
    if scale:
        num.append(StandardScaler())
    parts = []
    if numeric:
        parts.append(("num", make_pipeline(*num), numeric))
    if categorical:
        parts.append(("cat", make_pipeline(SimpleImputer(strategy="constant", fill_value="<missing>"),
                                           OneHotEncoder(handle_unknown="ignore", sparse_output=False)), categorical))
    return ColumnTransformer(parts, verbose_feature_names_out=False)


def balance_frame(X: pd.DataFrame) -> pd.DataFrame:
    """The covariates as readable numeric columns (unscaled) for balance tables."""
    typed, numeric, categorical = typed_features(X)
    cols = {}
    for c in numeric:
        v = typed[c].to_numpy(dtype=np.float64)
        miss = np.isnan(v)
        cols[c] = np.where(miss, np.nanmedian(v) if (~miss).any() else 0.0, v)
        if miss.any():
            cols[f"{c} (missing)"] = miss.astype(np.float64)
    for c in categorical:
        text = typed[c].astype(object)
        for level in typed[c].cat.categories:
            cols[f"{c}={level}"] = (text == level).to_numpy(dtype=np.float64)
    return pd.DataFrame(cols, index=X.index)
