"""chasm.io layer."""
