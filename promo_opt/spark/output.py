"""Atomic output of a Spark DataFrame as (partitioned) Parquet.

Spark writes into a hidden temporary directory beside the destination and marks it with
``_SUCCESS``; only then is the directory renamed onto the destination (an existing one is moved
aside first and deleted after). Any failure deletes the temporary directory, so a reader sees
either the previous output or the complete new one, never a part. The Hadoop FileSystem API does
the moves, so local paths, HDFS and object stores with a rename go through the same code.

A run of several stages (:func:`promo_opt.spark.engine.run`) stages each output under a hidden path beside its
destination (:func:`staging_path`) and moves them all into place (:func:`promote`) only once every stage has
succeeded; a refusal or failure on the way deletes what was staged (:func:`discard`), so the destinations keep
the previous run's outputs.
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
        _move_onto(fs, Path, tmp, dst, token)
    except BaseException:
        fs.delete(tmp, True)
        raise
    log.info("wrote %s (partitioned by %s)", dest, list(partition_by) or "nothing")
    return result


def _move_onto(fs, Path, src, dst, token: str) -> None:
    """Rename ``src`` onto ``dst``; an existing ``dst`` is moved aside first, put back if the rename fails, and
    deleted after it succeeds."""
    old = Path(dst.getParent(), f".{dst.getName()}.old-{token}")
    if fs.exists(dst):
        if not fs.rename(dst, old):
            raise RuntimeError(f"could not move the previous output {dst.toString()} aside")
    if not fs.rename(src, dst):
        if fs.exists(old):
            fs.rename(old, dst)
        raise RuntimeError(f"could not rename {src.toString()} onto {dst.toString()}")
    if fs.exists(old):
        fs.delete(old, True)


def staging_path(spark, dest: str) -> str:
    """A hidden path beside ``dest`` that a stage writes its output to before :func:`promote` moves it there."""
    _, dst, Path = _fs(spark, dest)
    return Path(dst.getParent(), f".{dst.getName()}.staged-{uuid.uuid4().hex[:12]}").toString()


def promote(spark, staged: str, dest: str) -> None:
    """Move the output written at ``staged`` onto ``dest`` (the previous one there is replaced)."""
    fs, dst, Path = _fs(spark, dest)
    _move_onto(fs, Path, Path(staged), dst, uuid.uuid4().hex[:12])
    log.info("moved %s onto %s", staged, dest)


def discard(spark, staged: str) -> None:
    """Delete an output staged by a run that did not finish (nothing there is fine)."""
    fs, path, _ = _fs(spark, staged)
    fs.delete(path, True)
