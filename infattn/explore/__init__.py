"""Interactive explorer (see panels)."""
