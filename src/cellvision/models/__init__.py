"""Model families and the name -> model registry.

Importing this package registers every built-in model, so :func:`create_model` and
:func:`list_models` see them all.
"""

from __future__ import annotations

from cellvision.models._common import MAX_PARAMETERS
from cellvision.models._registry import (
    ConfigurableModel,
    ModelEntry,
    create_model,
    get_model_entry,
    list_models,
    model_name_of,
    register_model,
    unwrap_model,
)
from cellvision.models.convnet import ConvNet, ConvNetConfig
from cellvision.models.recurrent import RecurrentConfig, RecurrentRegressor
from cellvision.models.resnet import ResNet, ResNetConfig
from cellvision.models.vit import ViT, ViTConfig

__all__ = [
    "MAX_PARAMETERS",
    "ConfigurableModel",
    "ConvNet",
    "ConvNetConfig",
    "ModelEntry",
    "RecurrentConfig",
    "RecurrentRegressor",
    "ResNet",
    "ResNetConfig",
    "ViT",
    "ViTConfig",
    "create_model",
    "get_model_entry",
    "list_models",
    "model_name_of",
    "register_model",
    "unwrap_model",
]
