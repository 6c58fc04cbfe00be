"""The library's two studies as code that reads top to bottom.

* :mod:`cellvision.recipes.cellcycle`: cell-cycle phase classification of imaging-flow-cytometry
  cells (:class:`~cellvision.recipes.cellcycle.CellCycleRecipe`, ``train``, ``evaluate``,
  ``cross_validate``, a saved :class:`~cellvision.recipes.cellcycle.TrainedClassifier`).
* :mod:`cellvision.recipes.forecasting`: month-fold benzene forecasting with small recurrent
  regressors on the UCI Air Quality series.

Each recipe is a frozen :class:`~cellvision.config.Config` plus a few functions built from the
library's pieces (models, sampling, splits, engine, metrics); the ``cellvision`` command only
parses arguments and calls them. The submodules are imported on demand, not by this package.
"""

from __future__ import annotations
