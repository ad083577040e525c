"""The data layer: reflections and the description of measured data, below scattering and refine.

:mod:`chasm.data.reflections` holds the reflection list and its operations
(independent of any file format); :mod:`chasm.data.noise` the noise models of
integrated intensities and flipping ratios (used by the project file's
defaults and by ``chasm simulate``). The import contract of
tests/test_layers.py keeps this package below scattering, refine and project.
"""
