"""The examples in the explorer's and the plots' docstrings run."""

import doctest
import importlib

import pytest

MODULES = [
    "infattn.plots",
    "infattn.explore.model",
    "infattn.explore.code",
    "infattn.explore.jobs",
    "infattn.explore.compute",
    "infattn.commands.lab",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
