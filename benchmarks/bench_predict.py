"""Scoring benchmark: 1M customers from their feature rows, with and without reason codes.

Usage: ``python benchmarks/bench_predict.py [--customers 1000000]`` (part of ``make bench``). Uses
the champion models of ``configs/default.yaml`` (trains them first, with a small tuning budget, when
the store has none). The 20,000 simulated customers' feature rows at the observation end are tiled
to the requested size with ±5 % noise on every numeric feature and fresh ids. Each mode runs in its
own process, so peak memory is per mode. Exact TreeSHAP is timed on ``--exact-customers`` rows and
its 1M time extrapolated linearly (it is linear in rows); the agreement of the approximate reasons
with the exact ones is measured on 5,000 customers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / ".bench"
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_features import RssSampler  # noqa: E402


def _config():
    from customer_value.config import load_config

    return load_config(ROOT / "configs" / "default.yaml")


def _models(cfg):
    from customer_value.errors import UserError
    from customer_value.pipelines.predict import load_chain

    try:
        return load_chain(cfg)
    except UserError:
        from customer_value.pipelines.train import run_train

        small = cfg.model_copy(deep=True)
        small.churn.tuning.n_trials = small.clv.tuning.n_trials = 5
        run_train(small, say=lambda _m: None)
        return load_chain(cfg)


def features(n: int) -> Path:
    path = BENCH / f"features_{n}.parquet"
    if path.exists():
        return path
    import numpy as np
    import pandas as pd

    from customer_value.features.build import build_feature_set
    from customer_value.pipelines.data import ensure_data, load_data

    cfg = _config()
    ensure_data(cfg)
    models = _models(cfg)
    tables = load_data(cfg).data
    fs = build_feature_set(
        tables,
        tables.transactions["timestamp"].max(),
        models.spec.features,
        models.spec.vocabulary,
    )
    base = fs.frame
    reps = -(-n // len(base))
    rng = np.random.default_rng(0)
    tiled = pd.concat([base] * reps, ignore_index=True).iloc[:n]
    num = tiled.select_dtypes("number").columns
    tiled[num] = tiled[num] * rng.uniform(0.95, 1.05, size=(len(tiled), len(num)))
    tiled.index = pd.Index([f"B{i:08d}" for i in range(len(tiled))], name="customer_id")
    BENCH.mkdir(exist_ok=True)
    tiled.to_parquet(path)
    return path


def worker(mode: str, path: Path, rows: int) -> dict:
    import pandas as pd

    from customer_value.chain import score

    warnings.simplefilter("ignore")
    cfg = _config()
    models = _models(cfg)
    feats = pd.read_parquet(path).iloc[:rows]
    loaded = RssSampler.current()
    with RssSampler() as sampler:
        t = time.perf_counter()
        out = score(models, feats, "2024-06-30", reasons=mode, chunk_size=cfg.predict.chunk_size)
        seconds = time.perf_counter() - t
    return {
        "mode": mode,
        "rows": len(out),
        "seconds": seconds,
        "peak_mb": sampler.peak_mb,
        "extra_mb": sampler.peak_mb - loaded,
    }


def agreement(path: Path) -> dict:
    import numpy as np
    import pandas as pd

    from customer_value.explain import top_drivers

    warnings.simplefilter("ignore")
    cfg = _config()
    models = _models(cfg)
    feats = pd.read_parquet(path).iloc[:5000]
    out = {}
    for task, model in ((t.name, models.models[t.name]) for t in models.tasks if t.explained):
        x = feats[model.features_]
        exact = top_drivers(model.contributions(x), feats, 3)
        approx = top_drivers(model.contributions(x, approx=True), feats, 3)
        top1 = float((exact["driver_1_feature"] == approx["driver_1_feature"]).mean())
        cols = [f"driver_{i}_feature" for i in (1, 2, 3)]
        jac = np.mean(
            [
                len(set(a) & set(b)) / len(set(a) | set(b))
                for a, b in zip(exact[cols].to_numpy(), approx[cols].to_numpy(), strict=True)
            ]
        )
        out[task] = {"top1_agreement": top1, "top3_jaccard": float(jac)}
    return out


def run(args_list: list[str]) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, *args_list],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--exact-customers", type=int, default=20_000)
    parser.add_argument("--out", default=str(ROOT / "reports" / "bench_predict.md"))
    parser.add_argument("--worker")
    parser.add_argument("--rows", type=int)
    parser.add_argument("--data")
    parser.add_argument("--agreement", action="store_true")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, Path(args.data), args.rows)))
        return
    if args.agreement:
        print(json.dumps(agreement(Path(args.data))))
        return
    path = features(args.customers)
    results = []
    for mode, rows in (
        ("none", args.customers),
        ("approx", args.customers),
        ("hybrid", args.customers // 5),  # timed on fewer rows (linear) to keep make bench short
        ("exact", args.exact_customers),
    ):
        res = run(["--worker", mode, "--data", str(path), "--rows", str(rows)])
        results.append(res)
        print(json.dumps(res), flush=True)
    agree = run(["--agreement", "--data", str(path)])
    lines = [
        "# Scoring benchmark",
        "",
        f"Command: `make bench` (`python benchmarks/bench_predict.py --customers {args.customers}`)",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}.",
        "Models: the champions of configs/default.yaml. Rows: feature rows (features already built),",
        "tiled from the simulated base. Time covers personas, churn, CLV, value, ranks and reasons.",
        "",
        "| reasons | customers | seconds | customers/s | 1M customers (s) | peak MB | extra MB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        rate = r["rows"] / r["seconds"]
        note = " (extrapolated)" if r["rows"] < args.customers else ""
        lines.append(
            f"| {r['mode']} | {r['rows']:,} | {r['seconds']:.1f} | {rate:,.0f} | "
            f"{1_000_000 / rate:,.0f}{note} | {r['peak_mb']:,.0f} | {r['extra_mb']:,.0f} |"
        )
    lines += [
        "",
        "Agreement of the approximate reasons (xgboost `approx_contribs`, Saabas) with exact TreeSHAP",
        "on 5,000 customers:",
        "",
        "| model | same top driver | top-3 Jaccard |",
        "|---|---:|---:|",
    ]
    for task, a in agree.items():
        lines.append(f"| {task} | {a['top1_agreement']:.1%} | {a['top3_jaccard']:.3f} |")
    text = "\n".join(lines) + "\n"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
