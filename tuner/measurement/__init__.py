"""Measuring configurations: workload, trial subprocess, timers, memory probe, speedup table."""
