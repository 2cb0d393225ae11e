"""The explorer's controls: every :class:`~infattn.explore.model.Config` field as a widget.

Log-spaced sliders for heads, width and draws; tabs for the model, the positions
and the inputs; ``continuous_update=False`` so a drag computes once, on release.
Also here: the device the panels compute on and the on-disk compilation cache.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import ipywidgets as w
import jax

from infattn.explore import model
from infattn.explore.model import Config

__all__ = ["Controls", "device_name", "use_compilation_cache"]

WIDTHS = (8, 16, 32, 64, 128, 256, 512)
DRAWS = (8, 16, 32, 64, 128, 256, 512)
DECAY_LENGTHS = (0.5, 1.0, 2.0, 4.0, 8.0)
SLIDER = {"continuous_update": False, "style": {"description_width": "90px"}}
_CHOICE = {"style": {"description_width": "90px"}}
MONO = "font-size: 11px; font-family: monospace; line-height: 1.25"
_LABELS = {
    "heads": "heads",
    "width": "width",
    "draws": "draws",
    "depth": "blocks",
    "scaling": "scaling",
    "mechanism": "mechanism",
    "layernorm": "LayerNorm",
    "residual": "residual",
    "nonlinearity": "MLP",
    "pos_emb": "positions",
    "decay": "decay",
    "decay_length": "decay length",
    "pos_std": "position std",
    "val_pos_emb": "values see positions",
    "inputs": "inputs",
    "seq_len": "length",
    "n_inputs": "inputs N",
    "dtype": "dtype",
}
_CHOICES = {
    "scaling": model.SCALINGS,
    "mechanism": model.MECHANISMS,
    "nonlinearity": model.NONLINEARITIES,
    "pos_emb": model.POS_EMB_TYPES,
    "decay": model.DECAY_FAMILIES,
    "inputs": model.INPUT_KINDS,
    "dtype": model.DTYPES,
}
_TOGGLES = ("scaling", "pos_emb", "dtype")
_STEPS = {"heads": model.HEADS, "width": WIDTHS, "draws": DRAWS, "decay_length": DECAY_LENGTHS}
_RANGES = {"depth": (1, 4), "seq_len": (2, 32), "n_inputs": (2, 16)}


def _control(name: str, label: str, cfg: Config) -> w.ValueWidget:
    """The widget of one :class:`Config` field, at ``cfg``'s value."""
    value = getattr(cfg, name)
    if name in _STEPS:  # log-spaced values
        options = tuple(sorted({*_STEPS[name], value}))
        return w.SelectionSlider(options=options, value=value, description=label, **SLIDER)
    if name in _RANGES:
        lo, hi = _RANGES[name]
        return w.IntSlider(value=value, min=lo, max=hi, description=label, **SLIDER)
    if name in _CHOICES:
        kind = w.ToggleButtons if name in _TOGGLES else w.Dropdown
        options = model.input_kinds() if name == "inputs" else _CHOICES[name]
        return kind(options=options, value=value, description=label, **_CHOICE)
    if name == "pos_std":
        return w.FloatSlider(value=value, min=0.0, max=2.0, step=0.25, description=label, **SLIDER)
    return w.Checkbox(value=value, description=label, indent=False)


def use_compilation_cache() -> None:
    """Keep compiled JAX programs on disk (``$XDG_CACHE_HOME/infattn/jax``) unless set already.

    The panels compile a program per model structure (seconds on a loaded CPU); with
    the cache a structure seen in an earlier session, or by the notebooks' CI run,
    loads instead. Set ``jax_compilation_cache_dir`` yourself to choose another place.
    """
    if jax.config.jax_compilation_cache_dir:
        return
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    jax.config.update("jax_compilation_cache_dir", str(base / "infattn" / "jax"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


use_compilation_cache()


def device_name() -> str:
    """The device JAX computes on: ``jax.devices()[0]`` as ``platform: kind``."""
    d = jax.devices()[0]
    return f"{d.platform}: {d.device_kind}" if d.device_kind != d.platform else d.platform


class Controls(w.VBox):
    """Every control of :class:`~infattn.explore.model.Config` as a widget.

    ``config`` is the current :class:`Config`; ``observe_config(fn)`` calls
    ``fn(config)`` after any control changes. ``widgets[name]`` is the widget of
    one field (e.g. ``controls.widgets["heads"].value = 16``).
    """

    def __init__(self, config: Config | None = None) -> None:
        cfg = Config.default() if config is None else config
        self.widgets: dict[str, w.ValueWidget] = {
            name: _control(name, label, cfg) for name, label in _LABELS.items()
        }
        self._seed = cfg.seed
        self._callbacks: list = []
        for widget in self.widgets.values():
            widget.observe(self._changed, names="value")
        g = self.widgets

        def rows(*names: tuple[str, ...]) -> w.VBox:
            return w.VBox([w.HBox([g[n] for n in row]) for row in names])

        tabs = w.Tab(
            children=[
                rows(
                    ("scaling",), ("depth", "mechanism"), ("nonlinearity", "layernorm", "residual")
                ),
                rows(("pos_emb",), ("decay", "decay_length"), ("pos_std", "val_pos_emb")),
                rows(("inputs", "dtype"), ("seq_len", "n_inputs")),
            ]
        )
        for i, title in enumerate(("model", "positions", "inputs")):
            tabs.set_title(i, title)
        tabs.selected_index = 0
        super().__init__([w.HBox([g["heads"], g["width"], g["draws"]]), tabs])

    @property
    def config(self) -> Config:
        """The :class:`Config` of the current control values."""
        values = {name: widget.value for name, widget in self.widgets.items()}
        return Config(seed=self._seed, **values)

    def observe_config(self, fn: Any) -> None:
        """Call ``fn(config)`` after every control change."""
        self._callbacks.append(fn)

    def _changed(self, change: dict) -> None:
        cfg = self.config
        for fn in self._callbacks:
            fn(cfg)
