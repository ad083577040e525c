"""chasm.maps layer."""
