"""Tests run in float64: parity with the reference is checked to 1e-6."""

import jax

jax.config.update("jax_enable_x64", True)
