"""CI gates: fail a build when a measured throughput regressed."""
