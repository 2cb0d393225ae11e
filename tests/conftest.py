"""Tests run in float64: parity with the reference is checked to 1e-6.

Panels built by tests do not warm up neighbouring configurations in the background
(``INFATTN_WARMUP=0``): ``tests/explore/test_warmup.py`` tests the warm-up itself.
"""

import os

import jax

jax.config.update("jax_enable_x64", True)
os.environ.setdefault("INFATTN_WARMUP", "0")
