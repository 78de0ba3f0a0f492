"""The champion gate: a new model version holds ``champion`` only by beating the current one.

Both are scored on the same out-of-time rows with the task's primary metric. The gate returns
decisions (words, for the run's tags) and alias moves ``(registered name, alias, version)``; the
caller applies the moves only after the run has finished, so a run that dies before finishing
never holds an alias.
"""

from __future__ import annotations

from collections.abc import Mapping

from customer_value import tracking
from customer_value.config import Config
from customer_value.tasks.base import Task, TaskData

__all__ = ["champion_gate", "pipeline_decision"]

Move = tuple[str, str, str]


def champion_gate(
    tasks: tuple[Task, ...],
    versions: Mapping[str, str | None],
    new_scores: Mapping[str, float],
    data: Mapping[str, TaskData],
    config: Config,
    names: Mapping[str, str],
) -> tuple[dict[str, str], list[Move]]:
    """Decide, task by task, whether the new version becomes champion or challenger."""
    decisions, moves = {}, []
    for task in tasks:
        new_version = versions.get(task.name)
        if new_version is None:
            continue
        text, alias = _decide(task, new_version, new_scores[task.name], data[task.name], config, names)
        decisions[task.name] = text
        moves.append((names[task.name], alias, new_version))
    return decisions, moves


def _decide(task, new_version, new_score, data, config, names) -> tuple[str, str]:
    name, metric = names[task.name], task.primary
    current = tracking.champion(name)
    if current is None or str(current.version) == str(new_version):
        return f"champion: v{new_version} is the first version ({metric} {new_score:.4f})", "champion"
    try:
        old_score = task.gate_score(tracking.load_model(name, "champion"), data, config)
    except Exception as exc:  # the champion cannot score today's features
        return (
            f"champion: v{new_version} replaces v{current.version}, which cannot score "
            f"the current features ({type(exc).__name__})",
            "champion",
        )
    if new_score > old_score:
        return (
            f"champion: v{new_version} beats v{current.version} on {metric} "
            f"({new_score:.4f} > {old_score:.4f}, same out-of-time data)",
            "champion",
        )
    return (
        f"challenger: v{new_version} does not beat champion v{current.version} on "
        f"{metric} ({new_score:.4f} <= {old_score:.4f}, same out-of-time data)",
        "challenger",
    )


def pipeline_decision(
    tasks: tuple[Task, ...], decisions: Mapping[str, str], version: str, names: Mapping[str, str]
) -> tuple[str, Move]:
    """The deployable chain follows its models: champion when every gating task's model is."""
    both = all(decisions.get(t.name, "").startswith("champion") for t in tasks if t.gates_pipeline)
    alias = "champion" if both else "challenger"
    return (
        f"{alias}: v{version} bundles this run's models",
        (names[tracking.PIPELINE], alias, version),
    )
