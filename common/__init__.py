"""Shared code that belongs to no one stage: file writes, the environment record, names.

Imports nothing from ``engines``, ``evaluation``, ``tuner`` or ``commands``, so every
one of them may use it.
"""
