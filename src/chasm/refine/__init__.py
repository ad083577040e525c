"""chasm.refine layer."""
