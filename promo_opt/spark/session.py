"""Spark session and table I/O from the config's ``spark:`` settings."""

from __future__ import annotations

import logging
import os
import shutil
import sys
from contextlib import contextmanager

from promo_opt.config import CampaignConfig, SparkConfig
from promo_opt.errors import ConfigError, DataError, PromoOptError

log = logging.getLogger(__name__)


def java_available() -> bool:
    """Spark needs a Java runtime: ``JAVA_HOME`` or ``java`` on the PATH."""
    home = os.environ.get("JAVA_HOME")
    return bool((home and os.path.exists(os.path.join(home, "bin", "java"))) or shutil.which("java"))


def _require_pyspark():
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise PromoOptError("the Spark engine needs pyspark: pip install 'promo-opt[spark]'") from None


def spark_session(settings: SparkConfig, app_name: str = "promo-opt"):
    """The (shared) SparkSession for ``settings``; workers run this same Python interpreter."""
    _require_pyspark()
    if not java_available():
        raise PromoOptError("the Spark engine needs Java (set JAVA_HOME or put 'java' on the PATH)")
    from pyspark.sql import SparkSession

    # executors of a local master start Python workers: make them use this interpreter (and its venv)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    b = (SparkSession.builder.master(settings.master).appName(app_name)
         .config("spark.sql.execution.arrow.pyspark.enabled", "true")
         .config("spark.ui.showConsoleProgress", "false"))
    if settings.master.startswith("local"):
        b = b.config("spark.ui.enabled", "false")
    for k, v in settings.conf.items():
        b = b.config(k, v)
    return b.getOrCreate()


def read_input(spark, ref: str, what: str, partitions: int | None = None):
    """A DataFrame from a Parquet path (file or directory), a CSV file (header row) or ``table:<name>``."""
    try:
        if ref.startswith("table:"):
            df = spark.table(ref.removeprefix("table:"))
        elif ref.lower().endswith(".csv"):
            df = spark.read.csv(ref, header=True, inferSchema=True)
        else:
            df = spark.read.parquet(ref)
    except Exception as err:  # AnalysisException: path or table missing; its text says which
        raise DataError(f"{what} {ref!r} could not be read by Spark: {str(err).splitlines()[0]}") from None
    return df.repartition(partitions) if partitions else df


def input_ref(config: CampaignConfig, key: str) -> str:
    """The configured input of a stage: ``spark.<key>``, else the local data path for candidates."""
    ref = getattr(config.spark, key)
    if ref is None and key == "candidates" and config.data.candidates is not None:
        ref = str(config.data.candidates)
    if ref is None:
        raise ConfigError(f"spark.{key} is not set: give a Parquet path or table:<name> for the Spark engine")
    if not ref.startswith("table:") and "://" not in ref and not ref.lower().endswith((".parquet", ".pq", ".csv")) \
            and not os.path.isdir(ref):
        raise ConfigError(f"spark.{key} = {ref!r}: the Spark engine reads Parquet (a .parquet file or directory), "
                          "CSV (.csv, with a header row) or table:<name>")
    return ref


@contextmanager
def user_errors():
    """Re-raise a promo-opt error raised inside a Spark task as itself, on the driver.

    A task's exception reaches the driver as a Java/Python exception whose text carries the
    original ``promo_opt.errors.<Kind>: <message>`` line; anything else propagates unchanged.
    """
    from promo_opt import errors

    try:
        yield
    except PromoOptError:
        raise
    except Exception as err:
        text = str(err)
        for kind in ("DataError", "ConfigError", "InfeasibleError", "ModelError", "PromoOptError"):
            tag = f"promo_opt.errors.{kind}: "
            if tag in text:
                msg = text.split(tag, 1)[1].splitlines()[0]
                raise getattr(errors, kind)(msg) from None
        raise
