import shutil
from pathlib import Path

import pytest
import yaml

from promo_opt.simulation import load_world


@pytest.fixture(scope="session")
def small_campaign(tmp_path_factory) -> Path:
    """A small simulated travel campaign (8k past users, 3k candidates) with its truth."""
    d = tmp_path_factory.mktemp("campaign")
    path = load_world("travel").write_campaign(d, seed=3, n_train=8000, n_candidates=3000)
    raw = yaml.safe_load(path.read_text())
    raw["model"] = {"learner": "auto", "folds": 3}  # every learner still competes; fewer folds for speed
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


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
