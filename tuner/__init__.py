"""Probe the hardware, search configurations, keep profiles, reproduce speedups."""
