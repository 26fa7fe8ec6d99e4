"""The distributed engine: the single-machine core applied per Spark partition.

Scoring broadcasts the trained model and calls :func:`promo_opt.pipeline.score_candidates` per
partition; allocation runs the exact dual of :mod:`promo_opt.allocation.dual` as a few passes of
per-partition partial results (the multiplier search and the final exact step on the driver);
planning sums per-partition hull segments into slope bins. Results equal the local engine's.
"""

from promo_opt.spark.session import java_available, spark_session

__all__ = ["java_available", "spark_session"]
