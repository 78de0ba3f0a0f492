"""Check (and repair) what killed processes leave behind in the tracking store.

A process killed with SIGKILL cannot end its own MLflow run: the run stays RUNNING for ever. Every
run records its host, pid and process start time, so a later process can tell a dead run from a
live one. ``customer-value doctor`` (and the start of every training run) marks dead runs KILLED.
It also checks the SQLite file, that every alias points at a finished run, and completes alias
moves that a finished run had decided but was killed before applying.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from customer_value import io, tracking
from customer_value.config import Config

__all__ = ["DoctorReport", "reap_dead_runs", "run_doctor"]


@dataclass
class DoctorReport:
    """What the doctor found: one row per finding, and whether problems remain.

    Attributes
    ----------
    rows : list of dict
        ``check``, ``status`` (ok, fixed, problem, note) and ``detail`` per finding.
    """

    rows: list[dict[str, str]] = field(default_factory=list)

    def add(self, check: str, status: str, detail: str) -> None:
        """Record one finding."""
        self.rows.append({"check": check, "status": status, "detail": detail})

    @property
    def problems(self) -> int:
        """Findings left unrepaired."""
        return sum(r["status"] == "problem" for r in self.rows)


def reap_dead_runs(note: str) -> list[str]:
    """Mark RUNNING runs whose process is gone as KILLED; return their ids.

    Runs of live processes (a concurrent training run) and of other hosts are left alone.
    Tracking must be set up (:func:`tracking.setup`).
    """
    dead = [r for r in tracking.unfinished_runs() if r["alive"] is False]
    for run in dead:
        tracking.mark_killed(run["run_id"], note)
    return [r["run_id"] for r in dead]


def run_doctor(config: Config, fix: bool = True, folders=()) -> DoctorReport:
    """Check the configured store and repair what a killed process left, when ``fix``.

    Parameters
    ----------
    config : Config
        Names the store, the experiment and the model prefix.
    fix : bool
        Repair (mark dead runs KILLED, complete interrupted alias moves, delete orphaned temp
        files); with False only report.
    folders : iterable of path
        More folders to clean of orphaned temp files (e.g. where predictions are written); the
        report's and the store's folders are always checked.

    Returns
    -------
    DoctorReport
    """
    report = DoctorReport()
    tc = config.tracking
    uri = tc.tracking_uri
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).exists():
        report.add(
            "store", "ok", f"no tracking store yet at {uri[len('sqlite:///') :]} (nothing to check)"
        )
        return report
    experiment = tc.experiment or config.project.name
    tracking.check_store(tc)  # a server that does not answer: a clear error, not minutes of retries
    tracking.setup(tc, experiment)
    if uri.startswith("sqlite:///"):
        result = tracking.sqlite_integrity(uri)
        report.add("store", "ok" if result == "ok" else "problem", f"SQLite integrity_check: {result}")

    for run in tracking.unfinished_runs():
        where = f"run {run['run_id']} ({run['name']}, started {run['start_time']:%Y-%m-%d %H:%M} UTC)"
        if run["alive"] is False:
            if fix:
                tracking.mark_killed(run["run_id"], "customer-value doctor")
                report.add("runs", "fixed", f"{where}: its process is gone; marked KILLED")
            else:
                report.add("runs", "problem", f"{where}: its process is gone (run doctor to mark it)")
        elif run["alive"]:
            report.add("runs", "note", f"{where}: still running (pid {run['tags'].get('process.pid')})")
        else:
            report.add(
                "runs",
                "note",
                f"{where}: started on {run['tags'].get('process.host', 'an unknown host')}; cannot "
                "check its process from here",
            )

    for run in tracking.pending_alias_moves(experiment):
        done = []
        for name, alias, version in tracking.decode_moves(run["tags"]["aliases.pending"]):
            current = tracking.current_alias_version(name, alias)
            # Roll forward only: a newer run may have moved the alias since.
            if current is None or current < int(version):
                if fix:
                    tracking.set_alias(name, alias, version)
                done.append(f"{name}@{alias} -> v{version}")
        if fix:
            tracking.set_run_tags(run["run_id"], {"aliases.applied": "true"})
        detail = f"run {run['run_id']} finished but was stopped while moving aliases"
        if not done:
            report.add("aliases", "fixed" if fix else "note", f"{detail}; nothing left to move")
        else:
            report.add("aliases", "fixed" if fix else "problem", f"{detail}: {', '.join(done)}")

    holders = tracking.alias_holders(tc.model_prefix)
    bad = [h for h in holders if h["run_status"] != "FINISHED"]
    for h in bad:
        report.add(
            "aliases",
            "problem",
            f"{h['model']}@{h['alias']} is v{h['version']} of run {h['run_id']}, which is "
            f"{h['run_status']}: point it at a finished version (MLflow UI, Models) or retrain",
        )
    if holders and not bad:
        champions = ", ".join(
            f"{h['model']} v{h['version']}" for h in holders if h["alias"] == "champion"
        )
        report.add("aliases", "ok", f"every alias points at a finished run (champions: {champions})")

    where = {Path(tc.report_path).parent, Path(tc.db_path).parent, *map(Path, folders)}
    orphans = [p for folder in sorted(where) for p in io.orphaned_temp_files(folder)]
    for path in orphans:
        if fix:
            path.unlink(missing_ok=True)
        report.add("files", "fixed" if fix else "problem", f"temp file of a killed writer: {path}")
    if not orphans:
        report.add("files", "ok", f"no temp files of killed writers in {len(where)} folder(s)")
    return report
