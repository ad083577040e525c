"""chasm.data layer."""
