"""Reading, checking and atomically writing the tables of a campaign.

Validation happens here, once, at the boundary: every later step receives typed arrays it can
trust. Errors name the file, the column and the offending values.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from promo_opt.config import CampaignConfig
from promo_opt.errors import DataError

# --------------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------------
def read_table(path: str | Path, what: str = "table") -> pd.DataFrame:
    """Read a CSV or Parquet file (by extension)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path, low_memory=False)
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
    except Exception as err:  # the reader's own message says what is wrong with the bytes
        raise DataError(f"{what} file {path} could not be read: {err}") from None
    raise DataError(f"{what} file {path}: unsupported extension '{suffix}'; expected .csv or .parquet")


def atomic_write(path: Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temp file beside ``path``, then rename it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write CSV, Parquet or JSON Lines (by extension) to a temp file, then rename into place."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return atomic_write(path, lambda p: df.to_csv(p, index=False, float_format="%.10g", lineterminator="\n"))
    if suffix in (".parquet", ".pq"):
        return atomic_write(path, lambda p: df.to_parquet(p, index=False))
    if suffix == ".jsonl":
        return atomic_write(path, lambda p: df.to_json(p, orient="records", lines=True, double_precision=10))
    raise DataError(f"cannot write {path}: unsupported extension '{suffix}'; expected .csv, .parquet or .jsonl")


def _finite(o):
    """NaN/inf become null: strict JSON readers reject bare NaN."""
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    if isinstance(o, (float, np.floating)) and not np.isfinite(o):
        return None
    return o


def write_json(obj, path: str | Path) -> Path:
    text = json.dumps(_finite(obj), indent=2, sort_keys=False, default=_json_default, allow_nan=False) + "\n"
    return atomic_write(Path(path), lambda p: p.write_text(text))


def write_bytes(data: bytes, path: str | Path) -> Path:
    return atomic_write(Path(path), lambda p: p.write_bytes(data))


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


# --------------------------------------------------------------------------------------------
# campaign tables
# --------------------------------------------------------------------------------------------
@dataclass
class TrainingData:
    ids: np.ndarray
    X: pd.DataFrame  # feature columns only
    arm: np.ndarray  # (n,) arm index in config.arm_names order (0 = control)
    converted: np.ndarray  # (n,) the outcome: 0/1 (binary), or a count or amount >= 0 (data.outcome_type)
    value: np.ndarray | None  # (n,) order value (meaningful where converted)
    propensity: np.ndarray | None  # (n,) probability of the logged arm

    def subset(self, rows: np.ndarray) -> "TrainingData":
        return TrainingData(ids=self.ids[rows], X=self.X.iloc[rows], arm=self.arm[rows],
                            converted=self.converted[rows],
                            value=None if self.value is None else self.value[rows],
                            propensity=None if self.propensity is None else self.propensity[rows])


@dataclass
class Candidates:
    ids: np.ndarray
    X: pd.DataFrame
    segment: np.ndarray | None = None  # raw segment labels when the config names a segment column
    long_term_segment: np.ndarray | None = None  # labels of ltv.segment (objective long_term_value)


def _require(df: pd.DataFrame, cols: list[str], what: str, path) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataError(
            f"{what} {path}: missing column(s) {missing}; present: {list(df.columns)[:20]}"
        )


def numeric_columns(df: pd.DataFrame, cols: list[str], what: str) -> np.ndarray:
    """The columns as a float array ``(n_rows, len(cols))``; text where a number belongs is a DataError
    naming the column, the row and the value (empty cells stay NaN for the caller's own range check)."""
    out = np.empty((len(df), len(cols)), dtype=np.float64)
    for j, c in enumerate(cols):
        v = pd.to_numeric(df[c], errors="coerce")
        bad = (v.isna() & df[c].notna()).to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(f"{what}: column '{c}' row {i} is {df[c].iloc[i]!r}; expected a number")
        out[:, j] = v.to_numpy(dtype=np.float64)
    return out


def _check_ids(df: pd.DataFrame, col: str, what: str, path) -> np.ndarray:
    ids = df[col]
    if ids.isna().any():
        raise DataError(f"{what} {path}: column '{col}' (data.id) has {int(ids.isna().sum())} empty ids")
    dup = ids[ids.duplicated()]
    if len(dup):
        raise DataError(
            f"{what} {path}: column '{col}' (data.id) must be unique; repeated ids e.g. {dup.head(3).tolist()}"
        )
    return ids.to_numpy()


def resolve_features(config: CampaignConfig, candidates: pd.DataFrame, train: pd.DataFrame | None = None) -> list[str]:
    """The feature columns: the explicit list, or every candidates column but the id (auto)."""
    d = config.data
    reserved = {d.id, d.treatment, d.outcome, d.value, d.propensity, d.time, d.unit} - {None}
    if d.features == "auto":
        feats = [c for c in candidates.columns if c not in reserved]
        if not feats:
            raise DataError(f"candidates {d.candidates}: no feature columns besides '{d.id}' (data.features: auto)")
    else:
        feats = list(d.features)
        bad = sorted(set(feats) & reserved)
        if bad:
            raise DataError(f"data.features lists {bad}, which are the id/treatment/outcome/value/propensity/time/unit columns")
        _require(candidates, feats, "candidates", d.candidates)
    if train is not None:
        _require(train, feats, "train (features must be in both files)", d.train)
    return feats


def arm_codes(config: CampaignConfig, df: pd.DataFrame, what: str, path) -> np.ndarray:
    """The treatment column as arm indices (config order, control 0); empty or unknown arms are errors."""
    d = config.data
    names = config.arm_names
    arm_col = df[d.treatment].astype("string")
    if arm_col.isna().any():
        raise DataError(f"{what} {path}: column '{d.treatment}' (data.treatment) has {int(arm_col.isna().sum())} empty values")
    unknown = sorted(set(arm_col.unique()) - set(names))
    if unknown:
        raise DataError(
            f"{what} {path}: column '{d.treatment}' has arm(s) {unknown[:10]} that the config does not name; "
            f"config arms: {names}"
        )
    return arm_col.map({n: i for i, n in enumerate(names)}).to_numpy(dtype=np.int64)


def prepare_training(config: CampaignConfig, df: pd.DataFrame, features: list[str], what: str = "train",
                     path=None, every_arm: bool = True) -> TrainingData:
    """Check the past-campaign table (or other logged rows: ``what``/``path`` name them) against the config.

    ``every_arm`` False: an arm without rows is allowed (callers check the arms they need).
    """
    d = config.data
    path = d.train if path is None else path
    need = [d.id, d.treatment, d.outcome] + ([d.value] if d.value else []) + ([d.propensity] if d.propensity else [])
    _require(df, need + [f for f in features if f not in need], what, path)  # features too: X is taken below
    ids = _check_ids(df, d.id, what, path)
    if len(df) == 0:
        raise DataError(f"{what} {path}: the file has no rows")

    names = config.arm_names
    arm = arm_codes(config, df, what, path)
    counts = np.bincount(arm, minlength=len(names))
    empty = [names[k] for k in range(len(names)) if counts[k] == 0]
    if empty and every_arm:
        raise DataError(f"{what} {path}: arm(s) {empty} have no rows in column '{d.treatment}'; every arm needs data to learn from")

    converted = outcome_values(df[d.outcome], d.outcome, d.outcome_type, what, path)

    value = None
    if d.value:
        v = pd.to_numeric(df[d.value], errors="coerce").to_numpy(dtype=np.float64)
        conv = converted > 0
        if np.isnan(v[conv]).any() or (v[conv] < 0).any() or np.isinf(v[conv]).any():
            raise DataError(
                f"{what} {path}: column '{d.value}' (data.value) must be a number >= 0 for converted rows; "
                f"{int((~np.isfinite(v[conv]) | (v[conv] < 0)).sum())} converted rows are not"
            )
        if conv.sum() == 0:
            raise DataError(f"{what} {path}: no converted rows, so '{d.value}' cannot be learned")
        value = np.where(conv, v, 0.0)

    prop = None
    if d.propensity:
        pr = pd.to_numeric(df[d.propensity], errors="coerce").to_numpy(dtype=np.float64)
        if not ((pr > 0) & (pr <= 1)).all():
            raise DataError(f"{what} {path}: column '{d.propensity}' (data.propensity) must be in (0, 1]")
        prop = pr
    return TrainingData(ids=ids, X=df[features].reset_index(drop=True), arm=arm, converted=converted,
                        value=value, propensity=prop)


def outcome_values(column: pd.Series, name: str, outcome_type: str, what: str, path) -> np.ndarray:
    """The outcome column checked against ``data.outcome_type``: int64 0/1 for binary, float64 >= 0
    (whole numbers for count) otherwise."""
    y = column.astype(int) if column.dtype == bool else column
    yv = pd.to_numeric(y, errors="coerce")
    where = f"{what} {path}: column '{name}' (data.outcome" + (")" if outcome_type == "binary" else
                                                                f", data.outcome_type {outcome_type})")
    if outcome_type == "binary":
        bad = ~yv.isin([0, 1])
        if bad.any():
            hint = ("; for counts or amounts set data.outcome_type: count or amount"
                    if (yv[bad].dropna() >= 0).all() and yv[bad].notna().all() else "")
            raise DataError(f"{where} must be binary 0/1; found {sorted(map(str, pd.unique(y[bad])))[:5]}{hint}")
        return yv.to_numpy(dtype=np.int64)
    v = yv.to_numpy(dtype=np.float64)
    bad = ~np.isfinite(v) | (v < 0)
    if outcome_type == "count":
        bad |= np.isfinite(v) & (v != np.round(v))
    if bad.any():
        expected = "whole numbers >= 0" if outcome_type == "count" else "finite numbers >= 0"
        raise DataError(f"{where} must hold {expected}; {int(bad.sum())} rows do not, e.g. "
                        f"{sorted(map(str, pd.unique(y[bad])))[:5]}")
    return v


def segment_labels(column: pd.Series) -> np.ndarray:
    """Segment values as text (missing -> '<missing>'), the keys of constraints.segment_budgets."""
    return column.astype("string").fillna("<missing>").to_numpy()


def prepare_candidates(config: CampaignConfig, df: pd.DataFrame, features: list[str]) -> Candidates:
    d = config.data
    _require(df, [d.id] + features, "candidates", d.candidates)
    ids = _check_ids(df, d.id, "candidates", d.candidates)
    seg = None
    if d.segment:
        _require(df, [d.segment], "candidates (data.segment)", d.candidates)
        seg = segment_labels(df[d.segment])
    lt = None
    if config.long_term_segment is not None:
        col = config.long_term_segment
        if col not in df.columns:
            raise DataError(f"candidates {d.candidates}: no column '{col}' (ltv.segment); expected each candidate's "
                            "level of it, to value its promotions by that level's long-term multipliers; add the "
                            f"column or drop ltv.segment; present: {list(df.columns)[:20]}")
        lt = segment_labels(df[col])
    return Candidates(ids=ids, X=df[features].reset_index(drop=True), segment=seg, long_term_segment=lt)


def load_training(config: CampaignConfig) -> tuple[TrainingData, list[str]]:
    """Read train (and the candidates' header, for ``features: auto``), check, return arrays."""
    d = config.data
    if d.train is None:
        raise DataError("data.train is not set: the config needs the past campaign to train on")
    train = read_table(d.train, "train")
    if d.features == "auto":
        if d.candidates is None:
            raise DataError("data.features is 'auto' (every candidates column) but data.candidates is not set")
        head = read_table(d.candidates, "candidates").head(0)
        features = resolve_features(config, head, train)
    else:
        features = resolve_features(config, train, train)
    if config.targeting_rules:  # before any fit: a rule must read the features (and the candidates' too)
        from promo_opt.targeting import check_rules

        check_rules(config.targeting_rules, train[features], f"the feature columns of train {d.train}")
    return prepare_training(config, train, features), features


def load_candidates(config: CampaignConfig, features: list[str]) -> Candidates:
    if config.data.candidates is None:
        raise DataError("data.candidates is not set: the config needs the users to decide for")
    return prepare_candidates(config, read_table(config.data.candidates, "candidates"), features)
