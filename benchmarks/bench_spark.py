"""pandas vs Spark local mode: the feature table on 1M and 10M simulated transactions.

Usage: ``python benchmarks/bench_spark.py [--sizes 1000000,10000000]``. Each engine runs in its own
process, end to end from the parquet file (read, features for every customer, result written);
peak memory is the resident memory of the whole process tree (the Spark JVM and its Python workers
included), sampled every 50 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / ".bench"
sys.path.insert(0, str(ROOT / "benchmarks"))


def tree_rss_mb(root_pid: int) -> float:
    """Resident memory of a process and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                parts = fh.read().rsplit(")", 1)[1].split()
            children.setdefault(int(parts[1]), []).append(int(entry))
            rss[int(entry)] = int(parts[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total / 2**20


def worker(engine: str, path: Path) -> dict:
    import warnings

    warnings.simplefilter("ignore")
    import pandas as pd

    from customer_value.config import FeatureConfig

    cfg = FeatureConfig()
    out = BENCH / f"out_{engine}"
    if engine == "pandas":
        from customer_value.features.build import build_features
        from customer_value.validate import ValidatedData

        t = time.perf_counter()
        tx = pd.read_parquet(path)
        tx["is_return"] = tx["amount"] < 0
        feats = build_features(ValidatedData(tx), tx["timestamp"].max().normalize(), cfg)
        feats.to_parquet(f"{out}.parquet")
        return {"seconds": time.perf_counter() - t, "customers": len(feats)}
    from customer_value.config import SourceConfig
    from customer_value.engines import spark as cvs

    spark = cvs.session("local[2]")
    t = time.perf_counter()
    tx = cvs._typed_transactions(cvs.read_source(spark, SourceConfig(path=path), "transactions"), None)
    as_of = pd.Timestamp(tx.agg({"timestamp": "max"}).collect()[0][0]).normalize()
    feats, _, _ = cvs.build_features_spark(spark, {"transactions": tx}, as_of, cfg, buckets=16)
    feats.write.mode("overwrite").parquet(str(out))
    n = spark.read.parquet(str(out)).count()
    seconds = time.perf_counter() - t
    spark.stop()
    return {"seconds": seconds, "customers": n}


def run(engine: str, path: Path, timeout: int) -> dict:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--worker", engine, "--data", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    peak = 0.0
    stop = threading.Event()

    def sample():
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, tree_rss_mb(proc.pid))
            time.sleep(0.05)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return {"error": f"> {timeout} s (stopped)"}
    finally:
        stop.set()
        th.join()
    if proc.returncode != 0:
        return {"error": "failed"}
    return {**json.loads(out.strip().splitlines()[-1]), "peak_mb": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--timeout", type=int, default=900)
    parser.add_argument("--out", default=str(ROOT / "reports" / "bench_spark.md"))
    parser.add_argument("--worker")
    parser.add_argument("--data")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, Path(args.data))))
        return
    from bench_features import dataset

    rows = []
    for size in [int(float(s)) for s in args.sizes.split(",")]:
        path = dataset(size)
        import pyarrow.parquet as pq

        n = pq.ParquetFile(path).metadata.num_rows
        for engine in ("pandas", "spark"):
            res = run(engine, path, args.timeout)
            rows.append({"rows": n, "engine": engine, **res})
            print(json.dumps(rows[-1]), flush=True)
    lines = [
        "# pandas vs Spark local mode: features",
        "",
        f"Command: `python benchmarks/bench_spark.py --sizes {args.sizes}`; 2 cores, "
        "Spark `local[2]`, 16 customer buckets; end to end from parquet (read, all features, "
        "write). Peak = resident memory of the process tree (JVM and Python workers included).",
        "",
        "| transactions | engine | customers | seconds | rows/s | peak MB |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['rows']:,} | {r['engine']} | | {r['error']} | | |")
        else:
            lines.append(
                f"| {r['rows']:,} | {r['engine']} | {r['customers']:,} | {r['seconds']:.1f} | "
                f"{r['rows'] / r['seconds']:,.0f} | {r['peak_mb']:,.0f} |"
            )
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
