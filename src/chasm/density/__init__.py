"""chasm.density layer."""
