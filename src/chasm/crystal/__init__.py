"""chasm.crystal layer."""
