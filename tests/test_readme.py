"""The README's Python examples run as written."""

from __future__ import annotations

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python examples"
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    assert namespace["k"].nngp.shape == (8, 8)
    assert namespace["y"].shape == (8, 1)
    assert namespace["est"].mean("nngp").shape == (8, 8)
    assert namespace["draws"].shape == (100, 2, 16, 1)  # the finite-head law of a deep model
    k_train, ntk = namespace["k_train"], namespace["k"].ntk  # tiled store = one kernel_fn call
    assert abs(k_train - ntk[:6, :6]).max() <= 1e-6 * abs(ntk).max()
