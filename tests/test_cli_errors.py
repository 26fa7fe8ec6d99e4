"""Every command fed malformed input answers one line on stderr and exit code 2, never a traceback.

A property test (hypothesis) corrupts the table each command reads (a column dropped, a column's
values turned to text or emptied, ids duplicated, no rows, an empty file, bytes that are no table)
and its config (not YAML, wrong types, unknown keys, arms that do not match the data). Whatever the
corruption, the command either still works (exit 0: e.g. a dropped column it does not need) or says
what is wrong in one line with exit code 2; a corruption no command can live with is always exit 2.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from promo_opt.cli import app
from promo_opt.config import load_config
from promo_opt.simulation import load_world
from promo_opt.simulation.outcomes import simulate_outcomes

runner = CliRunner()
SETTINGS = settings(max_examples=10, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def cli(*args) -> tuple[int, str, BaseException | None]:
    r = runner.invoke(app, ["--quiet", *map(str, args)])
    exc = r.exception if not isinstance(r.exception, SystemExit) else None
    return r.exit_code, r.stderr, exc


def assert_clear(code: int, err: str, exc, must_fail: bool, case=None) -> None:
    assert exc is None, f"traceback on {case}: {type(exc).__name__}: {exc}"
    assert code in (0, 2), (case, code, err)
    if must_fail:
        assert code == 2, f"a malformed input was accepted: {case}"
    if code == 2:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and len(lines[0]) > 20, err


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A tiny campaign trained, scored and allocated once; a holdout and outcomes beside it."""
    d = tmp_path_factory.mktemp("cli-errors")
    cfg_path = load_world("travel").write_campaign(d / "c", seed=4, n_train=1500, n_candidates=500)
    raw = yaml.safe_load(cfg_path.read_text())
    raw["model"] = {"learner": "pooled", "folds": 2}
    cfg_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    for args in (("train", cfg_path, "--out", d / "model"),
                 ("score", cfg_path, "--model", d / "model", "--out", d / "scores.csv"),
                 ("allocate", cfg_path, "--scores", d / "scores.csv", "--out", d / "alloc")):
        code, err, exc = cli(*args)
        assert code == 0 and exc is None, (args, err, exc)
    cfg = load_config(cfg_path)
    cand = pd.read_csv(cfg.data.candidates)
    rows = simulate_outcomes(cfg, pd.read_parquet(cfg.data.truth), cand["user_id"].to_numpy(), seed=3)
    cand.merge(rows, on="user_id").to_csv(d / "holdout.csv", index=False)
    rows.drop(columns=[c for c in rows.columns if c == cfg.data.treatment]).to_csv(d / "outcomes.csv", index=False)
    return {"dir": d, "config": cfg_path, "raw": raw, "model": d / "model", "scores": d / "scores.csv",
            "targets": d / "alloc" / "targets.csv", "holdout": d / "holdout.csv", "outcomes": d / "outcomes.csv"}


# ------------------------------------------------------------------------------------------------
# corruptions
# ------------------------------------------------------------------------------------------------
FATAL = ("empty file", "header only", "not a table")


@st.composite
def corruption(draw, columns: list[str]):
    kind = draw(st.sampled_from(["drop", "text", "blank", "duplicate ids", "empty file", "header only",
                                 "not a table", "negative"]))
    return kind, draw(st.sampled_from(columns))


def corrupt(src: Path, dst: Path, how: tuple[str, str]) -> bool:
    """Write ``src`` corrupted into ``dst`` (same format); True when no command can accept the result."""
    kind, col = how
    if kind == "empty file":
        dst.write_bytes(b"")
        return True
    if kind == "not a table":
        dst.write_bytes(b"\x00\xff\xfe PK\x03\x04 not,a\ntable\x00" * 7)
        return True
    df = pd.read_csv(src)
    if col not in df.columns and kind in ("drop", "text", "blank", "negative"):
        kind = "none"  # the column belongs to another of the tables this test corrupts
    if kind == "drop":
        df = df.drop(columns=[col])
    elif kind == "text":
        df[col] = [f"x{i}?" for i in range(len(df))]
    elif kind == "blank":
        df[col] = np.nan
    elif kind == "negative" and pd.api.types.is_numeric_dtype(df[col]):
        df[col] = -df[col].abs() - 1
    elif kind == "duplicate ids":
        df = pd.concat([df, df.iloc[:3]], ignore_index=True)
    elif kind == "header only":
        df = df.iloc[:0]
    df.to_csv(dst, index=False)
    return kind in FATAL


def columns(path: Path) -> list[str]:
    return list(pd.read_csv(path, nrows=1).columns)


def work_copy(made) -> Path:
    d = Path(tempfile.mkdtemp(prefix="cli-err-", dir=made["dir"]))
    shutil.copytree(made["config"].parent, d / "c")
    return d


# ------------------------------------------------------------------------------------------------
# the property, command by command
# ------------------------------------------------------------------------------------------------
TRAIN_COLS = ["user_id", "age", "device", "arm", "converted", "order_value"]


@SETTINGS
@given(how=corruption(TRAIN_COLS), command=st.sampled_from(["train", "effect"]))
def test_train_table(made, how, command):
    d = work_copy(made)
    fatal = corrupt(made["config"].parent / "train.csv", d / "c" / "train.csv", how)
    args = ("train", d / "c" / "campaign.yaml", "--out", d / "m") if command == "train" else \
        ("effect", d / "c" / "campaign.yaml", "--method", "ipw", "--out", d / "e")
    code, err, exc = cli(*args)
    assert_clear(code, err, exc, fatal or how[0] == "drop" and how[1] in ("user_id", "arm", "converted"), (how, command))


@SETTINGS
@given(how=corruption(["user_id", "age", "device", "bookings_12m"]))
def test_candidates_table(made, how):
    d = work_copy(made)
    fatal = corrupt(made["config"].parent / "candidates.csv", d / "c" / "candidates.csv", how)
    code, err, exc = cli("score", d / "c" / "campaign.yaml", "--model", made["model"], "--out", d / "s.csv")
    assert_clear(code, err, exc, fatal or how in (("drop", "user_id"), ("drop", "age")), how)


@SETTINGS
@given(how=corruption(["user_id", "value", "p_control", "p_pct10"]), command=st.sampled_from(["allocate", "plan"]))
def test_scores_file(made, how, command):
    d = work_copy(made)
    fatal = corrupt(made["scores"], d / "scores.csv", how)
    code, err, exc = cli(command, made["config"], "--scores", d / "scores.csv", "--out", d / "o")
    numbers = how[1] != "user_id"  # ids may be text or negative; probabilities and values may not
    assert_clear(code, err, exc, fatal or how[0] == "drop" or (how[0] in ("text", "negative", "blank") and numbers),
                 (how, command))


@SETTINGS
@given(how=corruption(["user_id", "arm", "holdout", "age", "converted", "order_value"]),
       table=st.sampled_from(["targets", "holdout"]))
def test_evaluate_inputs(made, how, table):
    d = work_copy(made)
    paths = {"targets": made["targets"], "holdout": made["holdout"]}
    fatal = corrupt(paths[table], d / f"{table}.csv", how) and how[1] in columns(paths[table])
    paths[table] = d / f"{table}.csv"
    code, err, exc = cli("evaluate", made["config"], "--targets", paths["targets"], "--holdout-data",
                         paths["holdout"], "--model", made["model"], "--out", d / "o", "--boot", 20)
    assert_clear(code, err, exc, fatal, (how, table))


@SETTINGS
@given(how=corruption(["user_id", "arm", "holdout", "converted", "order_value"]),
       table=st.sampled_from(["targets", "outcomes"]))
def test_measure_inputs(made, how, table):
    d = work_copy(made)
    paths = {"targets": made["targets"], "outcomes": made["outcomes"]}
    fatal = corrupt(paths[table], d / f"{table}.csv", how) and how[1] in columns(paths[table])
    paths[table] = d / f"{table}.csv"
    code, err, exc = cli("measure", made["config"], "--targets", paths["targets"], "--outcomes", paths["outcomes"],
                         "--out", d / "o", "--boot", 20)
    assert_clear(code, err, exc, fatal, (how, table))


CONFIG_BREAKS = {
    "empty": lambda raw: "",
    "not yaml": lambda raw: "arms: [unclosed\n",
    "a list": lambda raw: "- 1\n- 2\n",
    "budget is text": lambda raw: yaml.safe_dump({**raw, "constraints": {"budget": "lots"}}),
    "unknown key": lambda raw: yaml.safe_dump({**raw, "budgett": 5}),
    "arms renamed": lambda raw: yaml.safe_dump({**raw, "arms": [{**a, "name": f"{a['name']}_x"} for a in raw["arms"]]}),
    "no control": lambda raw: yaml.safe_dump({**raw, "arms": [{**a, "control": False} for a in raw["arms"]]}),
    "missing data": lambda raw: yaml.safe_dump({k: v for k, v in raw.items() if k != "data"}),
}


@SETTINGS
@given(brk=st.sampled_from(sorted(CONFIG_BREAKS)),
       command=st.sampled_from(["train", "score", "allocate", "plan", "evaluate", "measure", "effect", "run"]))
def test_config(made, brk, command):
    d = work_copy(made)
    cfg = d / "c" / "campaign.yaml"
    cfg.write_text(CONFIG_BREAKS[brk](made["raw"]))
    args = {
        "train": ("--out", d / "m"), "run": ("--out", d / "r"), "effect": ("--out", d / "e"),
        "score": ("--model", made["model"], "--out", d / "s.csv"),
        "allocate": ("--scores", made["scores"], "--out", d / "a"), "plan": ("--scores", made["scores"], "--out", d / "p"),
        "evaluate": ("--targets", made["targets"], "--holdout-data", made["holdout"], "--out", d / "o", "--boot", 20),
        "measure": ("--targets", made["targets"], "--outcomes", made["outcomes"], "--out", d / "o", "--boot", 20),
    }[command]
    code, err, exc = cli(command, cfg, *args)
    assert_clear(code, err, exc, True, (brk, command))


# ------------------------------------------------------------------------------------------------
# the cases named in the issue, and unknown ids / files
# ------------------------------------------------------------------------------------------------
def test_evaluate_with_holdout_lacking_the_model_features_is_one_line(made, tmp_path):
    """Was a raw KeyError traceback: the holdout file has the outcome columns but not the model's features."""
    pd.read_csv(made["holdout"]).drop(columns=["age", "device"]).to_csv(tmp_path / "h.csv", index=False)
    code, err, exc = cli("evaluate", made["config"], "--targets", made["targets"], "--holdout-data", tmp_path / "h.csv",
                         "--model", made["model"], "--out", tmp_path / "o")
    assert_clear(code, err, exc, must_fail=True)
    assert "missing column(s) ['age', 'device']" in err and "holdout data" in err


@pytest.mark.parametrize("args", [
    ("score", "{config}", "--model", "{dir}/no-such-model", "--out", "{dir}/s.csv"),
    ("score", "{config}", "--model", "{dir}", "--out", "{dir}/s.csv"),  # a directory that is not a model
    ("allocate", "{config}", "--scores", "{dir}/nope.csv", "--out", "{dir}/a"),
    ("allocate", "{config}", "--scores", "{dir}/holdout.csv", "--out", "{dir}/a"),  # a table that is not scores
    ("plan", "{config}", "--scores", "{scores}", "--out", "{dir}/p", "--budgets", "10,abc"),
    ("plan", "{config}", "--scores", "{scores}", "--out", "{dir}/p", "--budgets", "-5"),
    ("allocate", "{config}", "--scores", "{scores}", "--out", "{dir}/a", "--engine", "gpu"),
    ("evaluate", "{config}", "--targets", "{dir}/none.csv", "--holdout-data", "{holdout}", "--out", "{dir}/o"),
    ("run", "{dir}/no-such.yaml", "--out", "{dir}/r"),
    ("demo", "--world", "atlantis", "--out", "{dir}/d"),
    ("effect", "{config}", "--method", "magic", "--out", "{dir}/e"),
    ("effect", "{config}", "--estimand", "att2", "--out", "{dir}/e"),
    ("sample-size", "--users", "1000", "--base-rate", "1.5", "--uplift", "0.01"),
    ("sample-size", "--users", "0", "--base-rate", "0.1", "--uplift", "0.01"),
    ("keys", "create", "--scopes", "admin", "--data-dir", "{dir}/svc"),
    ("models", "register", "{model}", "--campaign", "cmp_0000000000000000", "--data-dir", "{dir}/svc"),
    ("models", "register", "{dir}/no-model", "--campaign", "cmp_0000000000000000", "--data-dir", "{dir}/svc"),
])
def test_unknown_files_ids_and_values_are_one_line(made, args):
    fill = {"config": made["config"], "dir": made["dir"], "scores": made["scores"], "holdout": made["holdout"],
            "model": made["model"]}
    code, err, exc = cli(*[a.format(**fill) for a in args])
    assert_clear(code, err, exc, True, args)
