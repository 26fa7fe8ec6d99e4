import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from promo_opt.cli import app
from promo_opt.simulation import load_world

_runner = CliRunner()


def create_key(data_dir, scopes: str = "read,write") -> str:
    """A service API key with ``scopes``, created as a user does (``promo-opt keys create``)."""
    r = _runner.invoke(app, ["keys", "create", "--scopes", scopes, "--data-dir", str(data_dir)])
    assert r.exit_code == 0, r.output
    return r.output.strip()


def invoke(*args):
    """The CLI in-process, quiet; bugs raise (catch_exceptions=False)."""
    return _runner.invoke(app, ["--quiet", *map(str, args)], catch_exceptions=False)


@pytest.fixture(scope="session")
def small_campaign(tmp_path_factory) -> Path:
    """A small simulated travel campaign (8k past users, 3k candidates) with its truth."""
    d = tmp_path_factory.mktemp("campaign")
    path = load_world("travel").write_campaign(d, seed=3, n_train=8000, n_candidates=3000)
    raw = yaml.safe_load(path.read_text())
    raw["model"] = {"learner": "auto", "folds": 3}  # every learner still competes; fewer folds for speed
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def run_out(small_campaign, tmp_path_factory) -> Path:
    """``promo-opt run`` on the small campaign, once for the whole session (tests only read it)."""
    out = tmp_path_factory.mktemp("run")
    r = invoke("run", small_campaign, "--out", out)
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture
def campaign_copy(small_campaign, tmp_path):
    """A private copy of the small campaign whose config a test may edit; returns (dir, raw config)."""
    d = tmp_path / "c"
    shutil.copytree(small_campaign.parent, d)
    return d, yaml.safe_load((d / "campaign.yaml").read_text())


def write_config(d: Path, raw: dict) -> Path:
    p = d / "campaign.yaml"
    p.write_text(yaml.safe_dump(raw, sort_keys=False))
    return p
