"""Fault injection: kills, damage, concurrency, hostile input, secrets, full disks.

Sizes scale with CORAL_FAULT_SCALE (see `scale.py`)."""
