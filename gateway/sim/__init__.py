"""Simulators: a pack of cells on a CAN bus, and an inverter (demo, tests, benches)."""
