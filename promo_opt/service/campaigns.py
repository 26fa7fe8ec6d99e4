"""Campaigns as the service holds them: a validated config whose data paths are server files.

Uploaded tables are checked by the same code the CLI uses (``config.parse_config``,
``data.load_training`` / ``data.load_candidates``); the config's own data paths are ignored, so
no path from a request reaches the filesystem.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from promo_opt.config import CampaignConfig, parse_config, yaml_problem
from promo_opt.data import load_candidates, load_training, prepare_candidates, read_table, resolve_features
from promo_opt.errors import ConfigError, PromoOptError

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")
UPLOADED_TABLES = ("train", "candidates", "panel", "drivers")
# tables named inside a config section (not under data:): upload field -> (section, key)
SECTION_TABLES = {"panel": ("ltv", "panel"), "drivers": ("drivers", "data")}


class UploadError(PromoOptError):
    """A campaign upload refused; ``field`` is the form field it is about (config, train, candidates, panel,
    drivers)."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


def upload_field(message: str) -> str:
    """The upload field a validation message is about: its first word names the table, else the config."""
    first = message.split(" ", 1)[0].rstrip(":")
    if first in UPLOADED_TABLES:
        return first
    for field, (section, key) in SECTION_TABLES.items():
        if first == f"{section}.{key}":
            return field
    if message.startswith(tuple(f"data.{t} " for t in ("train", "candidates"))):
        return first[len("data."):]
    return "config"


def parse_uploaded_yaml(text: bytes) -> dict:
    try:
        raw = yaml.safe_load(text.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ConfigError(f"config: not UTF-8 text: {err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"config: not valid YAML: {yaml_problem(err)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config: the config must be a YAML mapping of keys, got {type(raw).__name__}")
    return raw


def table_name(field: str, filename: str | None) -> str:
    """The server's file name for an uploaded table: the field name and the upload's extension."""
    suffix = Path(filename or "").suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise PromoOptError(f"{field}: unsupported file type {suffix or '(none)'!r} in file name {filename!r}; "
                            "expected .csv or .parquet")
    return f"{field}{suffix}"


def with_server_files(raw: dict, files: dict[str, str]) -> dict:
    """The config with its data paths replaced by the uploaded files (names relative to the campaign dir).

    ``ltv.panel`` and ``drivers.data`` become the uploaded ``panel`` / ``drivers`` tables; the config must name
    one where a table is uploaded and the other way round. ``ltv.values`` and ``ltv.structure`` name files
    the service does not read (nothing a request says becomes a path), so they are refused."""
    raw = dict(raw)
    data = dict(raw.get("data") or {}) if isinstance(raw.get("data"), dict) else raw.get("data")
    if isinstance(data, dict):
        for key in ("train", "candidates", "truth"):
            data.pop(key, None)
        data.update({k: v for k, v in files.items() if k in ("train", "candidates")})
        raw["data"] = data
    ltv = raw.get("ltv")
    if isinstance(ltv, dict):
        if ltv.get("values") is not None:
            raise ConfigError("ltv.values: the service does not read files named in a config; give the arms' "
                              "multipliers as ltv.multipliers, or ltv.panel with the panel uploaded (field 'panel')")
        if ltv.get("structure") is not None:
            raise ConfigError("ltv.structure: the service does not read files named in a config; put its keys "
                              "(surrogates, same_period, groups, equations, lags, controls) in the ltv: section")
    for field, (section, key) in SECTION_TABLES.items():
        node = raw.get(section)
        named = isinstance(node, dict) and node.get(key) is not None
        if named and field not in files:
            raise ConfigError(f"{section}.{key}: the config names a table ({node[key]}); upload it with the campaign "
                              f"(form field '{field}', .csv or .parquet)")
        if field in files:
            if not named:
                raise ConfigError(f"{field}: a table was uploaded but the config has no {section}.{key} to use it")
            raw[section] = {**node, key: files[field]}
    return raw


def validate_tables(config: CampaignConfig) -> dict:
    """Check the uploaded tables against the config exactly as the CLI would; rows per table."""
    out = {}
    if config.data.train is not None:
        data, features = load_training(config)
        out["train_rows"] = int(len(data.arm))
        if config.data.candidates is not None:
            out["candidates_rows"] = int(len(load_candidates(config, features).ids))
        out["features"] = features
    elif config.data.candidates is not None:
        df = read_table(config.data.candidates, "candidates")
        features = resolve_features(config, df)
        out["candidates_rows"] = int(len(prepare_candidates(config, df, features).ids))
        out["features"] = features
    return out


def load(raw: dict, campaign_dir: Path, overrides: dict | None = None, source: str = "campaign") -> CampaignConfig:
    """The stored config, its data paths resolved in ``campaign_dir``, with dotted-key ``overrides``."""
    raw = _deep_copy(raw)
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return parse_config(raw, base_dir=campaign_dir, source=source)


def _deep_copy(o):
    if isinstance(o, dict):
        return {k: _deep_copy(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_deep_copy(v) for v in o]
    return o
