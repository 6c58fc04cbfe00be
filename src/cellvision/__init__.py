"""cellvision: composable PyTorch building blocks for cell-image classification and small
recurrent regressors.

Examples
--------
>>> import cellvision
>>> cellvision.__version__
'0.2.0.dev0'
"""

from __future__ import annotations

from cellvision.config import Config
from cellvision.metrics import BalancedClassificationMetrics
from cellvision.models import create_model, list_models, register_model
from cellvision.sampling import ClassBalancedSampler

__version__ = "0.2.0.dev0"

__all__ = [
    "BalancedClassificationMetrics",
    "ClassBalancedSampler",
    "Config",
    "__version__",
    "create_model",
    "list_models",
    "register_model",
]
