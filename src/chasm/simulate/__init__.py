"""Simulated diffraction data (chasm.simulate).

:mod:`.noise`: seeded, documented noise models for X-ray and unpolarised-neutron
F² (counting statistics plus a relative error) and for polarised-neutron
flipping ratios, and the reflection lists a simulation needs (Laue-unique,
non-absent reflections up to a sinθ/λ limit; the lowest-angle or strongest
subset for PND).
"""

from .noise import (
    PND_NOISE,
    UND_NOISE,
    XRAY_NOISE,
    FlippingRatioNoise,
    IntensityNoise,
    as_generator,
    lowest_angle,
    observe_f2,
    strongest,
    unique_reflections,
)

__all__ = [
    "IntensityNoise",
    "FlippingRatioNoise",
    "XRAY_NOISE",
    "UND_NOISE",
    "PND_NOISE",
    "as_generator",
    "observe_f2",
    "unique_reflections",
    "lowest_angle",
    "strongest",
]
