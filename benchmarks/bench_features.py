"""Feature-building benchmark: ours vs lifetimes vs a bare DuckDB RFM query, side by side.

Usage: ``python benchmarks/bench_features.py [--sizes 1000000,10000000] [--readme README.md]``
(``make bench-features``). Each engine runs in its own process on the same simulated transactions,
so peak memory (max RSS) is per engine. lifetimes runs from its own venv (``.bench/lifetimes-venv``,
created on first use: it needs pandas < 2), and is skipped with a note when that cannot be built.

Besides the wall-clock seconds, each worker reports the CPU seconds of its process (user + system)
and the system part: on a shared machine the wall clock varies 2-3x with the load of other jobs,
the CPU time much less. Peak memory is the kernel's exact high-water mark of the process over the
computation (``VmHWM``, reset after loading), not a sample: no sampling thread competes with the
computation for the GIL and a core. The report goes to ``--out``; ``--readme`` also rewrites the
README's generated block (between ``<!-- bench_features:begin -->`` and ``<!-- bench_features:end
-->``) with the same table and summary, so the README carries exactly the report's figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / ".bench"
LIFETIMES_VENV = BENCH / "lifetimes-venv"
ROWS_PER_CUSTOMER = 21.5  # of the default simulated base


def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _status_mb(field: str) -> float | None:
    """A ``/proc/self/status`` memory field (``VmHWM``, ``VmRSS``) in MB, or None."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


class PeakRss:
    """Peak resident memory of this process over a block: the kernel's exact high-water mark.

    On entry the high-water mark (``VmHWM``) is reset to the current RSS by writing 5 to
    ``/proc/self/clear_refs`` (Linux >= 4.0); on exit ``peak_mb`` is ``VmHWM``. Exact, and free:
    nothing runs beside the computation. Where the reset is not allowed, it falls back to
    :class:`RssSampler` (a thread sampling every 5 ms).
    """

    def __init__(self):
        self.peak_mb = RssSampler.current()
        self._sampler = None

    def __enter__(self):
        self.start_mb = RssSampler.current()  # the RSS the computation starts from
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            if _status_mb("VmHWM") is None:
                raise OSError("no VmHWM")
        except OSError:
            self._sampler = RssSampler().__enter__()
        return self

    def __exit__(self, *exc):
        if self._sampler is not None:
            self._sampler.__exit__(*exc)
            self.peak_mb = self._sampler.peak_mb
        else:
            self.peak_mb = max(_status_mb("VmHWM") or 0.0, RssSampler.current())

    @property
    def method(self) -> str:
        return "sampled every 5 ms" if self._sampler is not None else "VmHWM"


class RssSampler:
    """Samples this process's resident memory every few ms; ``peak_mb`` is the max seen.

    Kept for :class:`PeakRss`'s fallback and for ``bench_predict.py``; the sampling thread takes
    the GIL every 5 ms, so it slows what it measures a little (more on a loaded machine).
    """

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
    import resource

    import pandas as pd

    tx = pd.read_parquet(path)
    as_of = tx["timestamp"].max().normalize()
    if engine in ("ours_full", "ours_rfm"):
        sys.path.insert(0, str(ROOT / "src"))
        from customer_value.config import FeatureConfig
        from customer_value.features.build import build_features
        from customer_value.features.events import prepare_events
        from customer_value.features.rfm import rfm_summary
        from customer_value.validate import ValidatedData

        tx["is_return"] = tx["amount"] < 0

        def compute():
            if engine == "ours_full":
                return build_features(ValidatedData(tx), as_of, FeatureConfig())
            return rfm_summary(prepare_events(tx, as_of))

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

        def compute():
            return con.execute(query).df()

    elif engine == "lifetimes":
        from lifetimes.utils import summary_data_from_transaction_data

        def compute():
            return summary_data_from_transaction_data(
                tx,
                "customer_id",
                "timestamp",
                monetary_value_col="amount",
                observation_period_end=as_of,
                freq="D",
            )

    else:
        raise SystemExit(f"unknown engine {engine}")
    import gc

    gc.collect()
    try:  # hand back what Arrow's allocator still caches from reading, so it is not counted
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    except (ImportError, AttributeError):
        pass
    with PeakRss() as peak:
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        t = time.perf_counter()
        out = compute()
        seconds = time.perf_counter() - t
        r1 = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "seconds": seconds,
        # CPU of the whole process (every thread: DuckDB runs 2), user + system, and the system part.
        "cpu_seconds": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime),
        "sys_seconds": r1.ru_stime - r0.ru_stime,
        "minor_faults": r1.ru_minflt - r0.ru_minflt,
        "peak_mb": _peak_mb(),
        "loaded_mb": peak.start_mb,
        "compute_peak_mb": peak.peak_mb,
        "peak_method": peak.method,
        "customers": len(out),
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


LABELS = {
    "ours_full": "ours_full (71 features + BG/NBD + Gamma-Gamma)",
    "ours_rfm": "ours_rfm (frequency, recency, T, monetary)",
    "duckdb": "duckdb (one bare SQL RFM query, 2 threads)",
    "lifetimes": "lifetimes `summary_data_from_transaction_data`",
}
README_BEGIN = "<!-- bench_features:begin (written by benchmarks/bench_features.py --readme) -->"
README_END = "<!-- bench_features:end -->"


def _table(rows: list[dict]) -> list[str]:
    lines = [
        "| transactions | engine | customers | seconds | CPU s (system) | rows/s | peak MB | extra MB "
        "| vs ours_rfm |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    labelled = set()
    for r in rows:
        name = r["engine"] if r["engine"] in labelled else LABELS.get(r["engine"], r["engine"])
        labelled.add(r["engine"])
        if "error" in r:
            lines.append(f"| {r['rows']:,} | {name} | | {r['error']} | | | | | |")
            continue
        ref = _find(rows, r["rows"], "ours_rfm")
        ratio = f"{r['seconds'] / ref['seconds']:.2f}x" if ref else ""
        cpu = f"{r['cpu_seconds']:.2f} ({r['sys_seconds']:.2f})" if "cpu_seconds" in r else ""
        lines.append(
            f"| {r['rows']:,} | {name} | {r['customers']:,} | {r['seconds']:.2f} | {cpu} | "
            f"{r['rows'] / r['seconds']:,.0f} | {r['compute_peak_mb']:,.0f} | "
            f"{r['compute_peak_mb'] - r['loaded_mb']:,.0f} | {ratio} |"
        )
    return lines


def _find(rows: list[dict], n_rows: int, engine: str) -> dict | None:
    return next(
        (x for x in rows if x["rows"] == n_rows and x["engine"] == engine and "seconds" in x), None
    )


def _summary(rows: list[dict]) -> list[str]:
    """One paragraph on the largest size, from the same figures as the table."""
    sizes = sorted({r["rows"] for r in rows})
    if not sizes:
        return []
    big, small = sizes[-1], sizes[0]
    full, rfm = _find(rows, big, "ours_full"), _find(rows, big, "ours_rfm")
    duck, life = _find(rows, big, "duckdb"), _find(rows, big, "lifetimes")
    parts = []
    if full:
        parts.append(
            f"At {big:,} transactions the whole feature table takes {full['seconds']:.1f} s "
            f"({full['cpu_seconds']:.1f} s of CPU, {full['sys_seconds']:.1f} s of it system time) "
            f"with a {full['compute_peak_mb'] / 1024:.1f} GB peak including the "
            f"{full['loaded_mb'] / 1024:.1f} GB of loaded data"
        )
    if rfm:
        bits = [f"the RFM subset takes {rfm['seconds']:.2f} s"]
        if life:
            life_small, rfm_small = _find(rows, small, "lifetimes"), _find(rows, small, "ours_rfm")
            extra = (
                f" ({life_small['seconds'] / rfm_small['seconds']:.1f}x at {small:,} rows)"
                if life_small and rfm_small and small != big
                else ""
            )
            bits.append(f"{life['seconds'] / rfm['seconds']:.1f}x faster than lifetimes{extra}")
        if duck:
            bits.append(
                f"DuckDB's single SQL aggregation takes {duck['seconds']:.2f} s on 2 threads "
                f"(ours_rfm / duckdb = {rfm['seconds'] / duck['seconds']:.2f})"
            )
        parts.append(", ".join(bits))
    text = "; ".join(parts) + "."
    return textwrap.wrap(text[0].upper() + text[1:], width=100, break_on_hyphens=False)


def _describe(sizes: str, method: str, load: tuple[float, float]) -> list[str]:
    machine = (
        f"`make bench-features` (`python benchmarks/bench_features.py --sizes {sizes}`) on "
        f"{platform.machine()}, {os.cpu_count()} cores; {versions()}. Load average of the machine "
        f"(other jobs included): {load[0]:.1f} at the start, {load[1]:.1f} at the end."
    )
    return [
        *textwrap.wrap(machine, width=100, break_on_hyphens=False),
        "",
        "Each engine runs in its own process on the same simulated transactions (already validated);",
        "`seconds` = wall clock of the computation, reading the file excluded; `CPU s` = user +",
        "system CPU time of the process over it (all threads), with the system part in brackets;",
        f"`peak MB` = max RSS of the process while computing ({method}; the loaded data included);",
        "`extra MB` = that peak minus the RSS with the data loaded, i.e. what the computation itself",
        "needs. `ours_full` = all 71 features with BG/NBD and Gamma-Gamma fits; `ours_rfm` =",
        "frequency, recency, T and repeat monetary value, the subset that lifetimes computes;",
        "`duckdb` = one bare SQL RFM aggregation (purchase days, frequency, recency, T, monetary),",
        "the near-limit reference; `lifetimes` = `summary_data_from_transaction_data`.",
    ]


def update_readme(path: Path, block: list[str]) -> None:
    """Replace the README's generated block (between the markers) with ``block``."""
    text = path.read_text(encoding="utf-8")
    start, end = text.find(README_BEGIN), text.find(README_END)
    if start < 0 or end < start:
        raise SystemExit(f"{path} has no {README_BEGIN!r} ... {README_END!r} block to rewrite")
    new = text[: start + len(README_BEGIN)] + "\n" + "\n".join(block) + "\n" + text[end:]
    path.write_text(new, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--engines", default="ours_full,ours_rfm,duckdb,lifetimes")
    parser.add_argument("--timeout", type=int, default=900)
    parser.add_argument("--out", default=str(ROOT / "reports" / "bench_features.md"))
    parser.add_argument("--readme", help="also rewrite this README's generated benchmark block")
    parser.add_argument("--worker")
    parser.add_argument("--data")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, Path(args.data))))
        return

    rows = []
    load_start = os.getloadavg()[0]
    for size in [int(float(s)) for s in args.sizes.split(",")]:
        path = dataset(size)
        import pyarrow.parquet as pq

        n_rows = pq.ParquetFile(path).metadata.num_rows
        for engine in args.engines.split(","):
            res = run_engine(engine, path, args.timeout)
            rows.append({"rows": n_rows, "engine": engine, **res})
            print(json.dumps(rows[-1]), flush=True)
    load = (load_start, os.getloadavg()[0])
    methods = {r.get("peak_method") for r in rows} - {None}
    method = methods.pop() if len(methods) == 1 else "VmHWM or sampled every 5 ms"

    block = [*_describe(args.sizes, method, load), "", *_table(rows), "", *_summary(rows)]
    text = "\n".join(["# Feature benchmark", "", *block]) + "\n"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    if args.readme:
        update_readme(Path(args.readme), block)
    print(text)


if __name__ == "__main__":
    main()
