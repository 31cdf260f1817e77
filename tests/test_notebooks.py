"""The research notebooks run top to bottom, and are stored without outputs.

Each notebook is executed in a fresh kernel (the venv's own Python) from a temp
directory, so a notebook that writes files cannot litter the repository.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT_S = 240  # generous: the machine may be busy; a healthy notebook takes ~30 s


def test_there_are_notebooks():
    names = [p.name for p in NOTEBOOKS]
    assert names == [
        "01_single_episode.ipynb",
        "02_counterfactual_attribution.ipynb",
        "03_small_sweep.ipynb",
        "04_what_sets_the_spiral_off.ipynb",
        "05_who_holds_the_futures.ipynb",
        "06_why_the_micro_cap_index_ran_up.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_clean(path: Path):
    """No stored outputs: diffs stay readable and plotly.js is not committed thrice."""
    book = nbformat.read(path, as_version=4)
    nbformat.validate(book)
    code = [c for c in book.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    assert any(c.cell_type == "markdown" for c in book.cells)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path: Path, tmp_path: Path):
    book = nbformat.read(path, as_version=4)
    client = NotebookClient(
        book,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError with the failing cell's traceback
    errors = [
        out
        for cell in book.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.output_type == "error"
    ]
    assert not errors
    shown = [
        out.output_type
        for cell in book.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.output_type in ("display_data", "execute_result")
    ]
    assert shown, "the notebook showed no table or figure"
    assert list(tmp_path.iterdir()) == [], "a notebook left files in its working directory"
