"""Feature-building benchmark: ours vs lifetimes vs a bare DuckDB RFM query, side by side.

Usage: ``python benchmarks/bench_features.py [--sizes 1000000,10000000]`` (``make bench-features``). Each engine runs in its own process on the same simulated transactions,
so peak memory (max RSS) is per engine. lifetimes runs from its own venv (``.bench/lifetimes-venv``,
created on first use: it needs pandas < 2), and is skipped with a note when that cannot be built.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / ".bench"
LIFETIMES_VENV = BENCH / "lifetimes-venv"
ROWS_PER_CUSTOMER = 21.5  # of the default simulated base


def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class RssSampler:
    """Samples this process's resident memory every few ms; ``peak_mb`` is the max seen."""

    def __init__(self, interval: float = 0.005):
        import threading

        self.interval = interval
        self.peak_mb = self.current()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def current() -> float:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    def _run(self):
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, self.current())
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self.current())


def dataset(size: int) -> Path:
    """Simulated transactions with about ``size`` rows, cached under .bench/."""
    path = BENCH / f"tx_{size}.parquet"
    if not path.exists():
        sys.path.insert(0, str(ROOT / "src"))
        from customer_value.io import write_frame
        from customer_value.synthetic import simulate_base

        base = simulate_base(int(size / ROWS_PER_CUSTOMER), seed=123)
        tx = base.transactions.sort_values(["customer_id", "timestamp"], kind="stable")
        write_frame(tx.reset_index(drop=True), path)
    return path


# --------------------------------------------------------------------------------------------------
# Workers: each prints one JSON line {seconds, peak_mb, loaded_mb, customers}.


def worker(engine: str, path: Path) -> dict:
    import pandas as pd

    tx = pd.read_parquet(path)
    as_of = tx["timestamp"].max().normalize()
    import gc

    gc.collect()
    loaded = RssSampler.current()
    sampler = RssSampler()
    if engine in ("ours_full", "ours_rfm"):
        sys.path.insert(0, str(ROOT / "src"))
        from customer_value.config import FeatureConfig
        from customer_value.features.build import build_features
        from customer_value.features.events import prepare_events
        from customer_value.features.rfm import rfm_summary
        from customer_value.validate import ValidatedData

        tx["is_return"] = tx["amount"] < 0
        with sampler:
            t = time.perf_counter()
            if engine == "ours_full":
                out = build_features(ValidatedData(tx), as_of, FeatureConfig())
            else:
                out = rfm_summary(prepare_events(tx, as_of))
            seconds = time.perf_counter() - t
        n = len(out)
    elif engine == "duckdb":
        import duckdb

        con = duckdb.connect()
        con.execute("SET threads TO 2")
        con.register("tx", tx)
        query = f"""
            WITH days AS (
              SELECT customer_id, CAST(timestamp AS DATE) AS d, SUM(amount) AS net
              FROM tx GROUP BY 1, 2 HAVING SUM(amount) > 0)
            SELECT customer_id, COUNT(*) - 1 AS frequency,
                   date_diff('day', MIN(d), MAX(d)) AS recency,
                   date_diff('day', MIN(d), DATE '{as_of.date()}') AS T,
                   AVG(net) AS monetary
            FROM days GROUP BY 1"""
        with sampler:
            t = time.perf_counter()
            out = con.execute(query).df()
            seconds = time.perf_counter() - t
        n = len(out)
    elif engine == "lifetimes":
        from lifetimes.utils import summary_data_from_transaction_data

        with sampler:
            t = time.perf_counter()
            out = summary_data_from_transaction_data(
                tx,
                "customer_id",
                "timestamp",
                monetary_value_col="amount",
                observation_period_end=as_of,
                freq="D",
            )
            seconds = time.perf_counter() - t
        n = len(out)
    else:
        raise SystemExit(f"unknown engine {engine}")
    return {
        "seconds": seconds,
        "peak_mb": _peak_mb(),
        "loaded_mb": loaded,
        "compute_peak_mb": sampler.peak_mb,
        "customers": n,
    }


def ensure_lifetimes() -> Path | None:
    python = LIFETIMES_VENV / "bin" / "python"
    if python.exists():
        return python
    try:
        subprocess.run([sys.executable, "-m", "venv", str(LIFETIMES_VENV)], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                "lifetimes==0.11.3",
                "pandas<2",
                "numpy<2",
                "pyarrow<15",
            ],
            check=True,
        )
        return python
    except (subprocess.CalledProcessError, OSError) as exc:
        print(f"lifetimes could not be installed ({exc}); skipping it", file=sys.stderr)
        return None


def run_engine(engine: str, path: Path, timeout: int) -> dict:
    python = sys.executable
    if engine == "lifetimes":
        python = ensure_lifetimes()
        if python is None:
            return {"error": "not installable"}
    cmd = [str(python), __file__, "--worker", engine, "--data", str(path)]
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
    except subprocess.TimeoutExpired:
        return {"error": f"> {timeout} s (stopped)"}
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def versions() -> str:
    import duckdb
    import numpy
    import pandas

    return (
        f"Python {platform.python_version()}, pandas {pandas.__version__}, numpy "
        f"{numpy.__version__}, duckdb {duckdb.__version__}, lifetimes 0.11.3 (pandas 1.5, own venv)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--engines", default="ours_full,ours_rfm,duckdb,lifetimes")
    parser.add_argument("--timeout", type=int, default=900)
    parser.add_argument("--out", default=str(ROOT / "reports" / "bench_features.md"))
    parser.add_argument("--worker")
    parser.add_argument("--data")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, Path(args.data))))
        return

    rows = []
    for size in [int(float(s)) for s in args.sizes.split(",")]:
        path = dataset(size)
        import pyarrow.parquet as pq

        n_rows = pq.ParquetFile(path).metadata.num_rows
        for engine in args.engines.split(","):
            res = run_engine(engine, path, args.timeout)
            rows.append({"rows": n_rows, "engine": engine, **res})
            print(json.dumps(rows[-1]), flush=True)

    lines = [
        "# Feature benchmark",
        "",
        f"Command: `make bench-features` (`python benchmarks/bench_features.py --sizes {args.sizes}`)",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores; {versions()}.",
        "",
        "Each engine runs in its own process on the same simulated transactions (already validated);",
        "time excludes reading the file. `peak MB` = max RSS of the process while computing",
        "(sampled every 5 ms; the loaded data included); `extra MB` = that peak minus the RSS with the",
        "data loaded, i.e. what the computation itself needs. `ours_full` = all 71 features with BG/NBD",
        "and Gamma-Gamma fits; `ours_rfm` = frequency, recency, T and repeat monetary value, the",
        "subset that lifetimes computes;",
        "`duckdb` = one bare SQL RFM aggregation (purchase days, frequency, recency, T, monetary),",
        "the near-limit reference; `lifetimes` = `summary_data_from_transaction_data`.",
        "",
        "| transactions | engine | customers | seconds | rows/s | peak MB | extra MB | vs ours_rfm |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['rows']:,} | {r['engine']} | | {r['error']} | | | | |")
            continue
        ref = next(
            (x for x in rows if x["rows"] == r["rows"] and x["engine"] == "ours_rfm" and "seconds" in x),
            None,
        )
        ratio = f"{r['seconds'] / ref['seconds']:.2f}x" if ref else ""
        lines.append(
            f"| {r['rows']:,} | {r['engine']} | {r['customers']:,} | {r['seconds']:.2f} | "
            f"{r['rows'] / r['seconds']:,.0f} | {r['compute_peak_mb']:,.0f} | "
            f"{r['compute_peak_mb'] - r['loaded_mb']:,.0f} | {ratio} |"
        )
    text = "\n".join(lines) + "\n"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
