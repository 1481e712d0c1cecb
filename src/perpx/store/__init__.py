"""Stores around the core: the command journal (and, with #7, snapshots and read models)."""
