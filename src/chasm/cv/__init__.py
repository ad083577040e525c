"""Cross-validation and resampling of refinements (issue 20).

:mod:`chasm.cv.folds` (seeded splits stratified in resolution),
:mod:`chasm.cv.run` (one fold's refinement, the summary),
:mod:`chasm.cv.compare` (ranking several projects on the same folds),
:mod:`chasm.cv.dask_backend` (the folds as Dask tasks),
:mod:`chasm.cv.report` (cv.json and the readable table).
"""
