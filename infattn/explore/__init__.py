"""Interactive explorer of infinite-width attention: panels for JupyterLab and Voila.

``from infattn.explore import KernelPanel; KernelPanel()`` displays a panel (needs
the ``notebook`` extra: ipywidgets and ipympl). The panels are
:class:`KernelPanel`, :class:`ConvergencePanel`, :class:`GaussianityPanel`,
:class:`ThreeLimitsPanel` and :class:`AttentionPanel`; panels built with the same
:class:`Controls` follow each other. What they compute lives in plain modules
importable without widgets: :mod:`infattn.explore.model` (controls -> model, inputs,
code), :mod:`infattn.explore.compute` (the views), :mod:`infattn.explore.jobs`
(worker threads), :mod:`infattn.explore.warmup` (background compilation of the
likely next configurations) and :mod:`infattn.explore.code` ("Show code").
"""

from __future__ import annotations

from typing import Any

_PANELS = (
    "AttentionPanel",
    "Controls",
    "ConvergencePanel",
    "GaussianityPanel",
    "KernelPanel",
    "ThreeLimitsPanel",
    "device_name",
)

__all__ = list(_PANELS)


def __getattr__(name: str) -> Any:
    if name in _PANELS:  # widgets load only when a panel is asked for
        from infattn.explore import panels

        return getattr(panels, name)
    raise AttributeError(f"module 'infattn.explore' has no attribute {name!r}")
