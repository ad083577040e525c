"""Noise models and reflection lists for simulated data: see :mod:`chasm.data.noise`.

The module moved to the data layer (issue 18: the project file's defaults use
the noise constants, and ``project`` must not import ``simulate``); its names
are re-exported here unchanged.
"""

from chasm.data.noise import *  # noqa: F403  (the same names)
from chasm.data.noise import __all__  # noqa: F401
