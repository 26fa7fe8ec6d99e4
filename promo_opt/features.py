"""Feature preprocessing fitted at train time and saved with the model.

Numeric (and boolean) columns stay numbers, missing values stay NaN (LightGBM routes them);
text columns become pandas categoricals with the levels seen in training (a level unseen at
score time becomes missing). Columns that look like identifiers are rejected.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from promo_opt.errors import DataError

MAX_LEVELS = 200  # a text column with more distinct values than this ...
MAX_LEVEL_SHARE = 0.2  # ... and than this share of the rows is an identifier, not a feature


@dataclass
class FeaturePreprocessor:
    numeric_: list[str] = field(default_factory=list)
    categorical_: dict[str, list[str]] = field(default_factory=dict)
    columns_: list[str] = field(default_factory=list)

    def fit(self, X: pd.DataFrame) -> "FeaturePreprocessor":
        self.numeric_, self.categorical_ = [], {}
        self.columns_ = list(X.columns)
        n = max(len(X), 1)
        for col in X.columns:
            s = X[col]
            if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
                self.numeric_.append(col)
                continue
            levels = sorted(s.dropna().astype(str).unique().tolist())
            if len(levels) > MAX_LEVELS and len(levels) > MAX_LEVEL_SHARE * n:
                raise DataError(
                    f"feature column '{col}' has {len(levels)} distinct text values in {n} rows: it looks "
                    f"like an identifier; drop it from data.features (or list the features explicitly)"
                )
            self.categorical_[col] = levels
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in self.columns_ if c not in X.columns]
        if missing:
            raise DataError(f"feature column(s) {missing} are missing; the model was trained with {self.columns_}")
        out = {}
        for col in self.columns_:
            s = X[col]
            if col in self.categorical_:
                levels = self.categorical_[col]
                text = _as_text(s)
                known = text.isin(levels).fillna(False).astype(bool)
                out[col] = pd.Categorical(text.astype(object).where(known, None), categories=levels)
            else:
                v = pd.to_numeric(s, errors="coerce")
                bad = v.isna() & s.notna()
                if bad.any():
                    raise DataError(
                        f"feature column '{col}' was numeric in training but has non-numeric values "
                        f"{s[bad].astype(str).unique()[:3].tolist()}"
                    )
                out[col] = v.astype(np.float64)
        return pd.DataFrame(out, index=X.index)

    def fit_transform(self, X: pd.DataFrame) -> pd.DataFrame:
        return self.fit(X).transform(X)


def _as_text(s: pd.Series) -> pd.Series:
    """A column as text for matching category levels. A numeric column (e.g. level codes that pandas
    read as floats because of a blank) is written without a trailing '.0', as in training."""
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        v = s.astype("float64")
        whole = v.notna() & (v == v.round())
        out = v.astype("string")
        out[whole] = v[whole].astype("int64").astype("string")
        return out
    return s.astype("string")


def numeric_matrix(X: pd.DataFrame) -> np.ndarray:
    """Features as float64: categoricals become their level codes, missing stays NaN."""
    cols = []
    for c in X.columns:
        s = X[c]
        if isinstance(s.dtype, pd.CategoricalDtype):
            codes = s.cat.codes.to_numpy(dtype=np.float64)
            codes[codes < 0] = np.nan
            cols.append(codes)
        else:
            cols.append(s.to_numpy(dtype=np.float64, na_value=np.nan))
    return np.column_stack(cols) if cols else np.zeros((len(X), 0))
