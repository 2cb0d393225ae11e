"""Notebooks are committed without outputs, open with what they teach and are shipped."""

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_the_notebooks_are_there():
    names = {p.name for p in NOTEBOOKS}
    assert {"01_infinite_head_limit.ipynb", "02_gaussianity.ipynb", "app.ipynb"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    cells = json.loads(path.read_text())["cells"]
    dirty = [
        i
        for i, c in enumerate(cells)
        if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count") is not None)
    ]
    assert not dirty, (
        f"{path.name}: cells {dirty} carry outputs; clear them before committing "
        "(jupyter nbconvert --clear-output --inplace notebooks/*.ipynb)"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_opens_with_markdown(path):
    first = json.loads(path.read_text())["cells"][0]
    assert first["cell_type"] == "markdown" and first["source"]


def test_package_data_link_points_at_the_notebooks():
    link = Path(__file__).resolve().parents[1] / "infattn" / "notebooks"
    assert link.is_symlink() and link.resolve() == NOTEBOOKS[0].parent
