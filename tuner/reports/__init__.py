"""Rendering what was measured: the tune table and profile, the speedup report, plots."""
