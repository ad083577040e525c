"""Topology and properties of the static multipole density (charge and spin)."""
