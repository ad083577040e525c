"""chasm.scattering layer."""
