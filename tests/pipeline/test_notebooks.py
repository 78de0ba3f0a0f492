"""The notebooks in notebooks/ run top to bottom against the latest run of a small training store.

They load that run through ``customer_value.pipelines.review`` (the package API), so a change that
breaks a notebook breaks this test. Executed copies (with outputs) are kept under the test
artifacts folder for a reader to open.
"""

from __future__ import annotations

import pytest

from conftest import ARTIFACTS, REPO

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks_for_personas_and_drivers():
    names = [p.name for p in NOTEBOOKS]
    assert len(names) >= 2, names
    assert any("persona" in n for n in names) and any("driver" in n for n in names), names


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes_on_the_latest_run(path, trained_store, monkeypatch):
    cfg, first, second = trained_store
    monkeypatch.setenv("CUSTOMER_VALUE_CONFIG", str(cfg.source_path))
    nb = nbformat.read(path, as_version=4)
    # Stored without outputs: a notebook committed with results would show stale numbers.
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "clear outputs"
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()  # raises CellExecutionError (with the cell and traceback) on any failure
    out = ARTIFACTS / "notebooks"
    out.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out / path.name)
    text = "\n".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    # The newest finished training run of the store is the fixture's second run.
    assert f"run {second.run_id}" in text
    images = sum(
        "image/png" in o.get("data", {})
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
    )
    assert images >= 1
