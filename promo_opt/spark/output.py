"""Atomic output of a Spark DataFrame as (partitioned) Parquet.

Spark writes into a hidden temporary directory beside the destination and marks it with
``_SUCCESS``; only then is the directory renamed onto the destination (an existing one is moved
aside first and deleted after). Any failure deletes the temporary directory, so a reader sees
either the previous output or the complete new one, never a part. The Hadoop FileSystem API does
the moves, so local paths, HDFS and object stores with a rename go through the same code.
"""

from __future__ import annotations

import logging
import uuid
from typing import Callable, Sequence

log = logging.getLogger(__name__)


def _fs(spark, path: str):
    jvm = spark.sparkContext._jvm
    p = jvm.org.apache.hadoop.fs.Path(path)
    return p.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), p, jvm.org.apache.hadoop.fs.Path


def write_parquet_atomic(spark, df, dest: str, partition_by: Sequence[str] = (),
                         check: Callable[[str], object] | None = None):
    """Write ``df`` to ``dest`` all at once; ``check(tmp_path)`` may read the written files first.

    Returns what ``check`` returned (e.g. totals aggregated from the written output).
    """
    fs, dst, Path = _fs(spark, dest)
    token = uuid.uuid4().hex[:12]
    tmp = Path(dst.getParent(), f".{dst.getName()}.tmp-{token}")
    old = Path(dst.getParent(), f".{dst.getName()}.old-{token}")
    result = None
    try:
        writer = df.write.mode("error")
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        writer.parquet(tmp.toString())
        if not fs.exists(Path(tmp, "_SUCCESS")):
            raise RuntimeError(f"Spark finished writing {tmp.toString()} without a _SUCCESS marker")
        if check is not None:
            result = check(tmp.toString())
        if fs.exists(dst):
            if not fs.rename(dst, old):
                raise RuntimeError(f"could not move the previous output {dest} aside")
        if not fs.rename(tmp, dst):
            if fs.exists(old):
                fs.rename(old, dst)
            raise RuntimeError(f"could not rename {tmp.toString()} onto {dest}")
    except BaseException:
        fs.delete(tmp, True)
        raise
    if fs.exists(old):
        fs.delete(old, True)
    log.info("wrote %s (partitioned by %s)", dest, list(partition_by) or "nothing")
    return result
