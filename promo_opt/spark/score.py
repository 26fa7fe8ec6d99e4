"""Distributed scoring: the trained model broadcast, the core's scorer applied per Arrow batch."""

from __future__ import annotations

import logging

import pandas as pd

from promo_opt import pipeline
from promo_opt.config import CampaignConfig
from promo_opt.data import prepare_candidates
from promo_opt.model import TrainedModel

log = logging.getLogger(__name__)


def score(spark, config: CampaignConfig, model: TrainedModel, candidates):
    """Scores DataFrame (id, value, p_<arm>..., segment) of a candidates DataFrame; lazy.

    Each batch goes through :func:`promo_opt.data.prepare_candidates` and
    :func:`promo_opt.pipeline.score_candidates`, as on one machine; the columns are checked once
    on the driver first, so a missing feature fails before any task starts.
    """
    from pyspark.sql.types import DoubleType, StringType, StructType

    cols = list(candidates.columns)
    prepare_candidates(config, pd.DataFrame({c: pd.Series([], dtype="float64") for c in cols}), model.features)
    id_col = config.data.id
    schema = StructType([candidates.schema[id_col]]).add("value", DoubleType())
    for a in config.arm_names:
        schema = schema.add(f"p_{a}", DoubleType())
    labels = list(dict.fromkeys(c for c in (config.data.segment, config.long_term_segment) if c))
    for c in labels:  # data.segment, and ltv.segment under objective long_term_value
        schema = schema.add(c, StringType())
    bc = spark.sparkContext.broadcast(model)
    need = list(dict.fromkeys([id_col] + list(model.features) + labels))

    def fn(it):
        m = bc.value
        for pdf in it:
            cands = prepare_candidates(config, pdf.reset_index(drop=True), m.features)
            yield pipeline.score_candidates(config, m, cands)

    return candidates.select(*need).mapInPandas(fn, schema)
