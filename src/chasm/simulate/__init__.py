"""Simulated diffraction data (chasm.simulate).

:mod:`.noise`: seeded, documented noise models for X-ray and unpolarised-neutron
F² (counting statistics plus a relative error) and for polarised-neutron
flipping ratios, and the reflection lists a simulation needs (Laue-unique,
non-absent reflections up to a sinθ/λ limit; the lowest-angle or strongest
subset for PND).
"""

from chasm.data.noise import *  # noqa: F403  (chasm.data.noise.__all__)
from chasm.data.noise import __all__  # noqa: F401
