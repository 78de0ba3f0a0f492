"""Reliability, proven on a tiny simulated base through the real CLI (separate processes).

- crash safety: ``train`` and ``predict`` killed with SIGKILL 20 times each, at seeded points
  placed by the ``[i/N]`` step lines the CLI prints (so every step is hit, on any machine speed);
- concurrency: two ``predict`` runs to one file, two ``train`` runs on one SQLite store;
- leakage through the whole ``train`` and ``predict`` paths: events after ``as_of`` change nothing;
- determinism: same seed, same models and predictions;
- secrets: credentials in URLs never reach params, tags or messages; models only from the registry.

The figures in the README's "Reliability" section are the constants of this file.
"""

from __future__ import annotations

import ast
import os
import queue
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import ARTIFACTS, REPO

CLI = [sys.executable, "-m", "customer_value.cli"]
KILL_TRIALS = 20  # per command; the README quotes this figure
MAX_ATTEMPTS = 3 * KILL_TRIALS  # in all; an attempt that finished or left its step is redrawn
SEED = 20261126
# The progress lines of `train` and `predict`: "[i/N] text (Ns)" as step i of N starts, and the
# line that reports the finished result (after it, a kill is no longer mid-run).
STEP = re.compile(r"\s*\[(\d+)/(\d+)\]\s+(.*?)(?:\s+\(\d+s\))?\s*$")
TRAIN_DONE = re.compile(r"\s*Done in \d")
PREDICT_DONE = re.compile(r"\s*Scored \d")

TINY = """
project: {name: tiny, seed: 3}
simulation: {n_customers: 800, output_dir: raw, truth_dir: truth}
data:
  transactions: {path: raw/transactions.parquet}
  customers: {path: raw/customers.parquet}
  interactions: {path: raw/interactions.parquet}
snapshots: {n_snapshots: 3, spacing_days: 60}
personas: {k_max: 4, silhouette_sample: 400, stability_bootstraps: 1, min_share: 0.02}
churn: {tuning: {n_trials: 1, max_estimators: 60}}
clv: {tuning: {n_trials: 1, max_estimators: 60}}
explain: {sample_size: 100}
tracking: {db_path: store/mlflow.db, artifact_dir: store/artifacts, report_path: out/report.html}
"""


def cli(root: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], cwd=root, capture_output=True, text=True, timeout=timeout)


def start(root: Path, *args: str) -> subprocess.Popen:
    # Own session: SIGKILL goes to the whole process group, as `kill -9 -<pgid>` would.
    return subprocess.Popen(
        [*CLI, *args],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stdout


class _Child:
    """A CLI process in its own session whose output lines a thread timestamps as they arrive."""

    def __init__(self, root: Path, *args: str) -> None:
        self.t0 = time.monotonic()
        self.proc = start(root, *args)
        self.lines: queue.Queue = queue.Queue()
        self.output: list[str] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.output.append(line)
            self.lines.put((time.monotonic(), line))
        self.lines.put((time.monotonic(), None))  # end of output: the process is exiting

    def next(self, timeout: float) -> tuple[float, str | None]:
        """The next line and when it arrived; raises queue.Empty after ``timeout`` seconds."""
        return self.lines.get(timeout=max(timeout, 0.0))

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:  # the group is gone already
            pass

    def finish(self, timeout: float = 900) -> int:
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        self.thread.join(timeout=60)
        return rc

    @property
    def text(self) -> str:
        return "".join(self.output)


@dataclass
class Timing:
    """A finished warm-up run: when each step started and when the result was reported."""

    steps: list[str]  # steps[0] = "process start", steps[i] = the text of "[i/N] ..."
    starts: list[float]  # seconds from the start of the process; starts[0] = 0
    done: float  # seconds until the result line
    seconds: float  # until the process exited

    def gap(self, i: int) -> float:
        """How long step ``i`` lasted (step N: until the result line)."""
        end = self.starts[i + 1] if i + 1 < len(self.starts) else self.done
        return end - self.starts[i]


def _timed(root: Path, done: re.Pattern, *args: str) -> Timing:
    """Run the CLI to the end and time its step lines."""
    child = _Child(root, *args)
    times: dict[int, tuple[float, str]] = {}
    total, finished = None, None
    while True:
        t, line = child.next(timeout=900)
        if line is None:
            break
        m = STEP.match(line)
        if m:
            times.setdefault(int(m.group(1)), (t - child.t0, m.group(3)))
            total = int(m.group(2))
        elif finished is None and done.match(line):
            finished = t - child.t0
    rc = child.finish()
    out = child.text
    assert rc == 0 and "Traceback" not in out, out
    assert total and sorted(times) == list(range(1, total + 1)), f"step lines [i/N] missing:\n{out}"
    assert finished is not None, f"no line matching {done.pattern!r}:\n{out}"
    return Timing(
        ["process start", *(times[i][1] for i in range(1, total + 1))],
        [0.0, *(times[i][0] for i in range(1, total + 1))],
        finished,
        time.monotonic() - child.t0,
    )


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A simulated 800-customer base, trained once; returns (root, train Timing, predict Timing)."""
    root = tmp_path_factory.mktemp("tiny")
    (root / "config.yaml").write_text(TINY)
    ok(cli(root, "simulate", "--config", "config.yaml"))
    train = _timed(root, TRAIN_DONE, "train", "--config", "config.yaml")
    predict = _timed(
        root, PREDICT_DONE, "predict", "--config", "config.yaml", "--output", "out/p.parquet"
    )
    return root, train, predict


def _db(root: Path) -> Path:
    return root / "store" / "mlflow.db"


def _client(root: Path):
    import mlflow

    uri = f"sqlite:///{_db(root)}"
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def _integrity(root: Path) -> str:
    con = sqlite3.connect(f"{_db(root).as_uri()}?mode=ro", uri=True)
    try:
        return con.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        con.close()


def _runs(root: Path) -> pd.DataFrame:
    client = _client(root)
    exp = client.get_experiment_by_name("tiny")
    runs = client.search_runs([exp.experiment_id], max_results=5000)
    return pd.DataFrame(
        {
            "run_id": [r.info.run_id for r in runs],
            "name": [r.info.run_name for r in runs],
            "status": [r.info.status for r in runs],
            "parent": [r.data.tags.get("mlflow.parentRunId", "") for r in runs],
            "killed_by": [r.data.tags.get("killed_detected_by", "") for r in runs],
            "aliases_applied": [r.data.tags.get("aliases.applied", "") for r in runs],
        }
    )


def _alias_runs(root: Path) -> dict[str, str]:
    """``model@alias`` -> status of the run that produced the version holding it."""
    client = _client(root)
    out = {}
    for model in client.search_registered_models():
        for alias, version in (model.aliases or {}).items():
            mv = client.get_model_version(model.name, version)
            out[f"{model.name}@{alias}"] = client.get_run(mv.run_id).info.status
    return out


def _temp_files(*folders: Path) -> list[Path]:
    return [p for f in folders if f.exists() for p in f.glob(".*.tmp")]


def _record(name: str, **figures) -> None:
    """Keep a test's figures beside the other test artifacts (the README quotes them)."""
    import json

    out = ARTIFACTS / "reliability"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(figures, indent=2, default=str))


def _check_store(root: Path) -> None:
    """What must hold after any kill: readable store, aliases on finished runs, no half report."""
    assert _integrity(root) == "ok"
    holders = _alias_runs(root)
    assert holders and all(s == "FINISHED" for s in holders.values()), holders
    report = root / "out" / "report.html"
    text = report.read_text(encoding="utf-8")
    assert text.startswith("<!doctype html>") and text.rstrip().endswith("</html>")


# -- crash safety ------------------------------------------------------------------------------
#
# Each kill is placed by the step lines the CLI prints, not by a clock: a trial is given a step
# (0 = the process start, i = "[i/N] ...") and a delay, and the whole process group gets SIGKILL that
# long after the step's line arrived. The steps are dealt round-robin over the trials and shuffled
# with the seed, so every step, the last included (train: moving the aliases; predict: validating
# and publishing), is killed in the same number of trials on any machine. The delay is a seeded
# fraction of that step's duration in the warm-up run. An attempt counts only if SIGKILL ended the
# process before it reported its result, and while it was still in its step (the last step line it
# printed); otherwise (a faster machine) it is retried in the same step with half the delay range,
# at most MAX_ATTEMPTS attempts in all. So each of the KILL_TRIALS trials is a real kill mid-run in
# its dealt step, or the test fails saying which step could not be hit.


@dataclass
class Attempt:
    step: int
    delay: float
    killed: bool  # SIGKILL ended the process before it reported its result
    landed: int  # the step it was in: the last "[i/N]" line it printed (0: none)
    output: str

    @property
    def counts(self) -> bool:
        return self.killed and self.landed == self.step


def _kill_at(root: Path, done: re.Pattern, step: int, delay: float, *args: str) -> Attempt:
    """Start the CLI; SIGKILL its process group ``delay`` s after step ``step`` begins."""
    child = _Child(root, *args)
    finished = False  # the result line arrived, or the output ended
    try:
        t_step = child.t0 if step == 0 else None
        while t_step is None:
            t, line = child.next(timeout=900)
            if line is None or done.match(line):
                finished = True
                break
            m = STEP.match(line)
            if m and int(m.group(1)) >= step:
                t_step = t
        while not finished:
            try:
                _, line = child.next(timeout=t_step + delay - time.monotonic())
            except queue.Empty:  # the delay is over and the process is still at work
                break
            finished = line is None or bool(done.match(line))
        if not finished:
            child.kill()
    except BaseException:
        child.kill()
        raise
    rc = child.finish()
    out = child.text
    reported = any(done.match(line) for line in child.output)
    assert rc in (0, -signal.SIGKILL), f"exit code {rc}, not 0 or SIGKILL:\n{out}"
    assert rc != 0 or reported, out
    landed = [int(m.group(1)) for m in map(STEP.match, child.output) if m]
    return Attempt(step, delay, rc == -signal.SIGKILL and not reported, max(landed, default=0), out)


def _kill_trials(timing: Timing, rng: random.Random, attempt, after_each) -> dict:
    """KILL_TRIALS kills mid-run, one per dealt step; ``after_each(Attempt)`` checks every attempt."""
    n = len(timing.steps)
    steps = [i % n for i in range(KILL_TRIALS)]
    rng.shuffle(steps)
    attempts, trials, missed = 0, [], Counter()
    for step in steps:
        redraws = 0
        while True:
            attempts += 1
            if attempts > MAX_ATTEMPTS:
                pytest.fail(
                    f"{attempts - 1} attempts for {KILL_TRIALS} kills mid-run: the process kept "
                    f"finishing before its kill in step {step} ({timing.steps[step]!r}, "
                    f"{timing.gap(step):.2f} s in the warm-up run); {len(trials)} trials were killed; "
                    f"missed attempts: {dict(missed)}"
                )
            delay = rng.uniform(0.0, timing.gap(step)) * 0.5**redraws
            a = attempt(step, delay)
            after_each(a)
            if a.counts:
                break
            missed["finished first" if not a.killed else f"killed later, in step {a.landed}"] += 1
            redraws += 1
        trials.append(
            {"step": step, "text": timing.steps[step], "delay_s": round(delay, 3), "redraws": redraws}
        )
    return {
        "attempts": attempts,
        "redraws": attempts - len(trials),
        "missed_attempts": dict(missed),
        "kills_per_step": {
            f"{i} {timing.steps[i]}": sum(t["step"] == i for t in trials) for i in range(n)
        },
        "kill_points": trials,
    }


def _timing_figures(timing: Timing) -> dict:
    return {f"{i} {timing.steps[i]}": round(timing.gap(i), 2) for i in range(len(timing.steps))}


@pytest.mark.slow
def test_train_killed_at_random_points_never_corrupts_or_holds_an_alias(tiny):
    root, timing, _ = tiny
    args = ("train", "--config", "config.yaml")
    outcomes: Counter = Counter()

    def attempt(step: int, delay: float) -> Attempt:
        before = set(_runs(root).query("parent == ''")["run_id"])
        a = _kill_at(root, TRAIN_DONE, step, delay, *args)
        top = _runs(root).query("parent == ''")
        new = top[~top["run_id"].isin(before)]
        if a.counts:  # what the kill left behind
            if new.empty:
                outcomes["died before opening its run"] += 1
            elif new.iloc[0]["status"] == "RUNNING":
                outcomes["left its run RUNNING"] += 1
            elif new.iloc[0]["aliases_applied"] != "true":
                outcomes["finished its run, killed while moving aliases"] += 1
            else:
                outcomes["finished its run and moved its aliases"] += 1
        elif not a.killed:
            assert len(new) == 1 and new.iloc[0]["status"] == "FINISHED", a.output
        return a

    figures = _kill_trials(timing, random.Random(SEED), attempt, lambda a: _check_store(root))
    killed = len(figures["kill_points"])
    assert killed == KILL_TRIALS

    runs = _runs(root)
    # The killed runs are recognisable: still RUNNING in the store, their process gone; the
    # training runs that started after them have already marked some KILLED.
    unfinished = runs[runs["status"].isin(["RUNNING", "KILLED"])]
    assert len(unfinished) >= 1
    check = cli(root, "doctor", "--config", "config.yaml", "--check-only", "--folder", "out")
    if (runs["status"] == "RUNNING").any():
        assert check.returncode == 1 and "its process is gone" in check.stdout, check.stdout
    reaped_by_train = int((runs["killed_by"].str.startswith("train run")).sum())
    left_running = int((runs["status"] == "RUNNING").sum())
    fixed = cli(root, "doctor", "--config", "config.yaml", "--folder", "out")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    runs = _runs(root)
    assert not (runs["status"] == "RUNNING").any()
    assert (runs.loc[runs["status"] == "KILLED", "killed_by"] != "").all()

    # The next run succeeds and leaves nothing behind.
    ok(cli(root, "train", "--config", "config.yaml"))
    _check_store(root)
    assert _temp_files(root / "out", root / "store") == []
    assert cli(root, "doctor", "--config", "config.yaml", "--check-only").returncode == 0
    _record(
        "train_sigkill",
        trials=KILL_TRIALS,
        killed_mid_run=killed,
        attempts=figures["attempts"],
        redraws=figures["redraws"],
        missed_attempts=figures["missed_attempts"],
        kills_per_step=figures["kills_per_step"],
        what_the_kills_left=dict(outcomes),
        runs_marked_killed_by_the_next_train=reaped_by_train,
        runs_left_running_then_marked_by_doctor=left_running,
        train_seconds=round(timing.seconds, 1),
        warm_up_step_seconds=_timing_figures(timing),
        kill_points=figures["kill_points"],
    )
    top = _runs(root).query("parent == ''")  # newest first
    assert top.iloc[0]["status"] == "FINISHED"


@pytest.mark.slow
def test_predict_killed_at_random_points_leaves_the_complete_previous_file(tiny):
    root, _, timing = tiny
    out = root / "out" / "p.parquet"
    reference = out.read_bytes()
    args = ("predict", "--config", "config.yaml", "--output", "out/p.parquet")
    outcomes: Counter = Counter()

    def attempt(step: int, delay: float) -> Attempt:
        temp_before, inode = set(_temp_files(out.parent)), out.stat().st_ino
        a = _kill_at(root, PREDICT_DONE, step, delay, *args)
        if a.counts:  # what the kill left behind
            if set(_temp_files(out.parent)) - temp_before:
                outcomes["killed while writing: its temp file beside the previous file"] += 1
            elif out.stat().st_ino != inode:
                outcomes["killed after the rename: the new complete file"] += 1
            else:
                outcomes["killed before writing: the previous file"] += 1
        return a

    def after_each(a: Attempt) -> None:
        # Either the old file or a new complete one (the same bytes: predict is deterministic).
        assert out.read_bytes() == reference, a.output
        assert len(pd.read_parquet(out)) == 800

    figures = _kill_trials(timing, random.Random(SEED + 1), attempt, after_each)
    killed = len(figures["kill_points"])
    assert killed == KILL_TRIALS
    ok(cli(root, "predict", "--config", "config.yaml", "--output", "out/p.parquet"))
    assert out.read_bytes() == reference
    assert _temp_files(out.parent) == []  # the next write removed the killed writers' temp files
    _record(
        "predict_sigkill",
        trials=KILL_TRIALS,
        killed_mid_run=killed,
        attempts=figures["attempts"],
        redraws=figures["redraws"],
        missed_attempts=figures["missed_attempts"],
        kills_per_step=figures["kills_per_step"],
        what_the_kills_left=dict(outcomes),
        predict_seconds=round(timing.seconds, 1),
        warm_up_step_seconds=_timing_figures(timing),
        kill_points=figures["kill_points"],
    )


# -- concurrency -------------------------------------------------------------------------------


@pytest.mark.slow
def test_two_predicts_to_one_output_end_with_one_complete_file(tiny):
    root, _, _ = tiny
    out = root / "out" / "p.parquet"
    reference = out.read_bytes()
    procs = [
        start(root, "predict", "--config", "config.yaml", "--output", "out/p.parquet") for _ in range(2)
    ]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert out.read_bytes() == reference
    assert _temp_files(out.parent) == []


@pytest.mark.slow
def test_two_trains_on_one_sqlite_store_both_finish_one_waits(tiny):
    root, _, _ = tiny
    client = _client(root)
    versions = lambda: len(client.search_model_versions("name='customer-value-churn'"))  # noqa: E731
    n_before, runs_before = versions(), len(_runs(root).query("parent == ''"))
    procs = [start(root, "train", "--config", "config.yaml") for _ in range(2)]
    outputs = [p.communicate(timeout=900)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert any("waiting for the training run" in o for o in outputs), outputs
    assert _integrity(root) == "ok"
    runs = _runs(root).query("parent == ''")
    assert len(runs) == runs_before + 2 and (runs.head(2)["status"] == "FINISHED").all()
    assert versions() == n_before + 2
    _check_store(root)


@pytest.mark.slow
def test_doctor_completes_alias_moves_a_finished_run_was_killed_in(tiny):
    root, _, _ = tiny
    ok(cli(root, "train", "--config", "config.yaml"))
    client = _client(root)
    exp = client.get_experiment_by_name("tiny")
    run = client.search_runs(
        [exp.experiment_id],
        filter_string="attributes.status = 'FINISHED' and tags.`aliases.applied` = 'true'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )[0]
    moves = [m for m in run.data.tags["aliases.pending"].split(";") if m]
    assert len(moves) == 4  # churn, clv, personas, pipeline
    # As if the process died after finishing the run, before moving any alias.
    client.delete_tag(run.info.run_id, "aliases.applied")
    for move in moves:
        name, alias = move.split("=v")[0].rsplit("@", 1)
        client.delete_registered_model_alias(name, alias)
    check = cli(root, "doctor", "--config", "config.yaml", "--check-only")
    assert check.returncode == 1 and "stopped while moving aliases" in check.stdout, check.stdout
    ok(cli(root, "doctor", "--config", "config.yaml"))
    for move in moves:
        target, version = move.split("=v")
        name, alias = target.rsplit("@", 1)
        assert str(client.get_model_version_by_alias(name, alias).version) == version
    assert client.get_run(run.info.run_id).data.tags["aliases.applied"] == "true"
    _check_store(root)


# -- leakage through train and predict ---------------------------------------------------------


def _future_events(raw: Path, as_of: pd.Timestamp, rng: np.random.Generator) -> None:
    """Append events after ``as_of`` that would change everything if any of it leaked."""
    tx = pd.read_parquet(raw / "transactions.parquet")
    cust = pd.read_parquet(raw / "customers.parquet")
    inter = pd.read_parquet(raw / "interactions.parquet")
    after = lambda n: as_of + pd.to_timedelta(rng.integers(1, 200, n), unit="D")  # noqa: E731
    # Existing customers: huge orders, returns; brand-new customers who sign up later.
    some = rng.choice(tx["customer_id"].unique(), 200)
    extra = tx.sample(len(some), random_state=1).reset_index(drop=True)
    extra["customer_id"] = some
    extra["timestamp"] = after(len(extra))
    extra["amount"] = rng.choice([1e6, -500.0, 0.01], len(extra))
    new_ids = [f"N{i:05d}" for i in range(50)]
    newc = cust.sample(50, random_state=2).reset_index(drop=True)
    newc["customer_id"] = new_ids
    if "signup_date" in newc:
        newc["signup_date"] = after(50)
    newtx = tx.sample(300, random_state=3).reset_index(drop=True)
    newtx["customer_id"] = rng.choice(new_ids, 300)
    newtx["timestamp"] = after(300)
    late = inter.sample(min(300, len(inter)), random_state=4).reset_index(drop=True)
    late["timestamp"] = after(len(late))
    for frame in (extra, newtx):
        if "order_id" in frame:
            frame["order_id"] = [f"F{i}-{c}" for i, c in enumerate(frame["customer_id"])]
    pd.concat([tx, extra, newtx], ignore_index=True).to_parquet(raw / "transactions.parquet")
    pd.concat([cust, newc], ignore_index=True).to_parquet(raw / "customers.parquet")
    pd.concat([inter, late], ignore_index=True).to_parquet(raw / "interactions.parquet")


def _truncate(raw: Path, as_of: pd.Timestamp) -> None:
    end = as_of + pd.Timedelta(days=1)
    tx = pd.read_parquet(raw / "transactions.parquet")
    tx[tx["timestamp"] < end].to_parquet(raw / "transactions.parquet")
    inter = pd.read_parquet(raw / "interactions.parquet")
    inter[inter["timestamp"] < end].to_parquet(raw / "interactions.parquet")
    cust = pd.read_parquet(raw / "customers.parquet")
    if "signup_date" in cust:
        cust = cust[cust["signup_date"] < end]
    cust.to_parquet(raw / "customers.parquet")


def _artifacts(client, run_id: str) -> dict[str, str]:
    """Every CSV/JSON artifact of a run, as text."""
    out, todo = {}, [None]
    while todo:
        for item in client.list_artifacts(run_id, todo.pop()):
            if item.is_dir:
                todo.append(item.path)
            elif item.path.endswith((".csv", ".json")):
                out[item.path] = Path(client.download_artifacts(run_id, item.path)).read_text()
    return out


# What may differ between the two runs: the record of the input file itself (its size and hash,
# and the validation counts over all of its rows), the registry's answer to a second run, and the
# run's identity. Everything trained, evaluated, explained or predicted must be identical.
INPUT_RECORD_TAGS = {"data.rows", "data.customers", "data.last_date", "data.sha256"}
INPUT_RECORD_ARTIFACTS = {"data/validation_report.csv", "data/validation_summary.json"}
RUN_IDENTITY = ("process.", "mlflow.", "champion_decision.", "model_version.", "aliases.")


@pytest.mark.slow
def test_events_after_as_of_change_nothing_in_train_or_predict(tiny, tmp_path):
    src, _, _ = tiny
    root = tmp_path / "leak"
    (root / "raw").mkdir(parents=True)
    for name in ("transactions", "customers", "interactions"):
        (root / "raw" / f"{name}.parquet").write_bytes((src / "raw" / f"{name}.parquet").read_bytes())
    (root / "config.yaml").write_text(TINY)
    as_of = pd.Timestamp("2024-03-31")
    rng = np.random.default_rng(SEED)

    _truncate(root / "raw", as_of)
    ok(cli(root, "train", "--config", "config.yaml", "--as-of", "2024-03-31"))
    args = ("predict", "--config", "config.yaml", "--as-of", "2024-03-31")
    ok(cli(root, *args, "--output", "out/before.parquet"))

    _future_events(root / "raw", as_of, rng)
    ok(cli(root, "train", "--config", "config.yaml", "--as-of", "2024-03-31"))
    ok(cli(root, *args, "--output", "out/after.parquet"))

    client = _client(root)
    exp = client.get_experiment_by_name("tiny")
    a, b = client.search_runs(
        [exp.experiment_id],
        filter_string="attributes.run_name = 'train 2024-03-31'",
        order_by=["attributes.start_time ASC"],
    )
    assert a.data.metrics == b.data.metrics
    assert a.data.params == b.data.params
    tags = lambda r: {  # noqa: E731
        k: v for k, v in r.data.tags.items() if not k.startswith(RUN_IDENTITY)
    }
    differ = {k for k in tags(a).keys() | tags(b).keys() if tags(a).get(k) != tags(b).get(k)}
    assert differ <= INPUT_RECORD_TAGS, differ
    assert "data.rows" in differ  # the future rows were there, and ignored
    art_a, art_b = _artifacts(client, a.info.run_id), _artifacts(client, b.info.run_id)
    assert art_a.keys() == art_b.keys()
    changed = {k for k in art_a if art_a[k] != art_b[k]}
    assert changed <= INPUT_RECORD_ARTIFACTS, changed
    # The same champion scores the same customers identically, byte for byte.
    assert (root / "out" / "before.parquet").read_bytes() == (
        root / "out" / "after.parquet"
    ).read_bytes()


# -- determinism -------------------------------------------------------------------------------


def test_same_seed_same_models_same_predictions(trained_store):
    from customer_value.pipelines.review import load_run

    cfg, first, second = trained_store
    assert first.run_id != second.run_id
    ids = [
        "churn_model_version",
        "clv_model_version",
        "persona_model_version",
        "churn_run_id",
        "clv_run_id",
        "persona_run_id",
    ]
    p1 = load_run(cfg, first.run_id).predictions(reasons="exact").drop(columns=ids)
    p2 = load_run(cfg, second.run_id).predictions(reasons="exact").drop(columns=ids)
    pd.testing.assert_frame_equal(p1, p2, check_exact=True)


# -- security basics ---------------------------------------------------------------------------


def test_credentials_never_reach_params_tags_or_messages(tmp_path):
    secret = "s3cret-Pa55"
    code = f"""
import mlflow
from customer_value import tracking
from customer_value.config import TrackingConfig
cfg = TrackingConfig(db_path="{tmp_path}/mlflow.db", artifact_dir="{tmp_path}/art")
tracking.setup(cfg, "secrets")
with tracking.start_run("r") as run:
    tracking.log_params({{"tracking": {{"uri": "postgresql://alice:{secret}@db.example/mlflow"}},
                         "sources": ["s3://key:{secret}@bucket/tx.parquet"]}})
    tracking.set_tags({{"output": "mysql+pymysql://bob:{secret}@10.0.0.1/predictions"}})
r = mlflow.MlflowClient().get_run(run.info.run_id)
print(r.data.params, r.data.tags)
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "alice:***@db.example" in res.stdout and "bob:***@10.0.0.1" in res.stdout
    assert secret not in res.stdout + res.stderr
    # Messages: a database output that cannot be reached names the host, never the password.
    (tmp_path / "c.yaml").write_text(TINY)
    res = cli(
        tmp_path,
        "predict",
        "--config",
        "c.yaml",
        "--output",
        f"postgresql://alice:{secret}@127.0.0.1:9/db",
        timeout=300,
    )
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert secret not in res.stdout + res.stderr


def test_servers_bind_loopback_unless_asked():
    from customer_value.config import TrackingConfig

    assert TrackingConfig().ui_host == "127.0.0.1"
    makefile = (REPO / "Makefile").read_text()
    assert "--ip 127.0.0.1" in makefile  # make notebooks
    cli_src = (REPO / "src" / "customer_value" / "cli.py").read_text()
    assert "0.0.0.0" not in cli_src


def test_models_are_loaded_only_by_registry_or_run_uri():
    """Every MLflow model load goes through a ``models:/`` or ``runs:/`` URI built from config."""
    tree = ast.parse((REPO / "src" / "customer_value" / "tracking.py").read_text())
    loads = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and n.func.attr in ("load_model", "spark_udf")
    ]
    assert loads
    for call in loads:
        arg = call.args[1] if call.func.attr == "spark_udf" else call.args[0]
        if isinstance(arg, ast.JoinedStr):
            head = arg.values[0]
            assert isinstance(head, ast.Constant) and head.value.startswith(("models:/", "runs:/"))
        else:  # a parameter: check the callers build it from the registry name
            assert isinstance(arg, ast.Name)
    # The Spark path passes a URI: the registered chain of the configured prefix, by alias.
    spark_src = (REPO / "src" / "customer_value" / "engines" / "spark.py").read_text()
    assert 'uri = f"models:/{' in spark_src


@pytest.mark.parametrize(
    ("step", "sig"),
    [(1, signal.SIGINT), (3, signal.SIGINT), (7, signal.SIGINT), (3, signal.SIGTERM)],
)
def test_interrupt_is_one_line_and_exit_128_plus_signal(tiny, tmp_path, step, sig):
    """Ctrl-C (to the whole process group, as a terminal sends it) or SIGTERM at a step.

    Whatever library is running when it lands (pandas, Optuna and xgboost in tuning, the refits),
    the user sees one ``error: interrupted`` line, no traceback, and exit 130 (143 for SIGTERM).
    """
    root, train, _ = tiny
    work = tmp_path / "w"
    shutil.copytree(root, work)
    child = _Child(work, "train", "--config", "config.yaml")
    total = len(train.steps) - 1
    try:
        while True:
            _, line = child.next(timeout=600)
            assert line is not None, f"train ended before step {step}:\n{child.text}"
            if line.lstrip().startswith(f"[{step}/{total}]"):
                break
        os.killpg(child.proc.pid, sig)
        rc = child.finish(timeout=300)
    finally:
        child.kill()
    out = child.text
    assert rc == 128 + int(sig), f"exit {rc}:\n{out}"
    assert "Traceback" not in out and "XGBoostError" not in out, out
    assert out.count("error: ") == 1 and "error: interrupted" in out, out


def test_a_secret_in_the_config_reaches_no_file_of_the_run(tiny, tmp_path):
    """Params, tags, the report (local and artifact), text artifacts and the pickled pipeline model.

    The secret sits in a config string that training never needs (so the run completes), set on
    the command line so that no input file holds it; afterwards no byte of any file under the run's
    folder (SQLite store included) contains it.
    """
    root, _, _ = tiny
    work = tmp_path / "w"
    shutil.copytree(root, work)
    secret = "Zq9-S3cret-Run"
    res = cli(
        work, "train", "--config", "config.yaml", "--set", f"tracking.ui_host=https://ann:{secret}@h"
    )
    ok(res)
    assert secret not in res.stdout + res.stderr
    leaks = [p for p in work.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    assert not leaks, leaks
    assert b"ann:***@h" in (work / "out" / "report.html").read_bytes()
