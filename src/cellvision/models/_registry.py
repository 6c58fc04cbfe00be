"""Name -> model registry: ``register_model``, ``create_model``, ``list_models``."""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Protocol, TypeVar, runtime_checkable

from torch import nn

from cellvision.config import Config

__all__ = [
    "ConfigurableModel",
    "ModelEntry",
    "create_model",
    "get_model_entry",
    "list_models",
    "model_name_of",
    "register_model",
    "unwrap_model",
]


@runtime_checkable
class ConfigurableModel(Protocol):
    """What a registered model class provides.

    A registered model is an :class:`torch.nn.Module` subclass with a class attribute
    ``config_class`` (a :class:`~cellvision.config.Config` subclass), a constructor taking
    one config instance, and a ``config`` attribute that returns it.

    Examples
    --------
    >>> import dataclasses
    >>> from torch import nn
    >>> @dataclasses.dataclass(frozen=True, kw_only=True)
    ... class TinyConfig(Config):
    ...     width: int = 4
    >>> class Tiny(nn.Module):
    ...     config_class = TinyConfig
    ...     def __init__(self, config: TinyConfig) -> None:
    ...         super().__init__()
    ...         self.config = config
    >>> isinstance(Tiny(TinyConfig()), ConfigurableModel)
    True
    """

    config: Any


_M = TypeVar("_M", bound=type[nn.Module])


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """One registry entry: a model class plus the config defaults of this name.

    Parameters
    ----------
    name : str
        Registry name, e.g. ``"cellcycle_vit"``.
    model_class : type
        The :class:`torch.nn.Module` subclass to build.
    config_class : type
        Its :class:`~cellvision.config.Config` subclass.
    defaults : mapping
        Config fields that this name sets before user overrides (a preset).

    Examples
    --------
    >>> import dataclasses
    >>> from torch import nn
    >>> @dataclasses.dataclass(frozen=True, kw_only=True)
    ... class TinyConfig(Config):
    ...     width: int = 4
    >>> class Tiny(nn.Module):
    ...     config_class = TinyConfig
    ...     def __init__(self, config: TinyConfig) -> None:
    ...         super().__init__()
    ...         self.config = config
    >>> entry = ModelEntry("tiny_wide", Tiny, TinyConfig, {"width": 32})
    >>> entry.build_config()
    TinyConfig(width=32)
    >>> entry.build_config(width=8)
    TinyConfig(width=8)
    """

    name: str
    model_class: type[nn.Module]
    config_class: type[Config]
    defaults: Mapping[str, Any]

    def build_config(self, **overrides: Any) -> Config:
        """Return the config for this name with ``overrides`` applied and validated.

        Parameters
        ----------
        **overrides
            Config fields to change.

        Returns
        -------
        Config
            An instance of :attr:`config_class`.

        Raises
        ------
        ValueError
            If an override is not a field of the config (the message lists the fields).

        Examples
        --------
        >>> import dataclasses
        >>> from torch import nn
        >>> @dataclasses.dataclass(frozen=True, kw_only=True)
        ... class TinyConfig(Config):
        ...     width: int = 4
        >>> entry = ModelEntry("tiny", nn.Module, TinyConfig, {})
        >>> entry.build_config(width=2)
        TinyConfig(width=2)
        >>> entry.build_config(depth=2)
        Traceback (most recent call last):
            ...
        ValueError: unknown TinyConfig field(s) ['depth']; valid fields are ['width']
        """
        self.config_class.check_keys(overrides)
        return self.config_class(**{**self.defaults, **overrides})


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, **defaults: Any) -> Callable[[_M], _M]:
    """Class decorator that registers a model under ``name``.

    Stack it to register presets of one class: each name carries its own config defaults,
    which :func:`create_model` applies before the caller's overrides.

    Parameters
    ----------
    name : str
        The registry name (lower case letters, digits and underscores by convention).
    **defaults
        Config fields this name sets, for example ``cell="gru"``.

    Returns
    -------
    callable
        The decorator; it returns the class unchanged.

    Raises
    ------
    ValueError
        If ``name`` is empty or already taken by a different class or defaults, or a
        default is not a field of the class's config.
    TypeError
        If the decorated object is not an ``nn.Module`` subclass with a ``config_class``.

    Examples
    --------
    >>> import dataclasses
    >>> from torch import nn
    >>> @dataclasses.dataclass(frozen=True, kw_only=True)
    ... class TinyConfig(Config):
    ...     width: int = 4
    >>> @register_model("doc_tiny_wide", width=16)
    ... @register_model("doc_tiny")
    ... class Tiny(nn.Module):
    ...     config_class = TinyConfig
    ...     def __init__(self, config: TinyConfig) -> None:
    ...         super().__init__()
    ...         self.config = config
    ...         self.linear = nn.Linear(config.width, 2)
    >>> create_model("doc_tiny_wide").config.width
    16
    >>> model_name_of(create_model("doc_tiny"))
    'doc_tiny'
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")

    def decorator(model_class: _M) -> _M:
        if not (isinstance(model_class, type) and issubclass(model_class, nn.Module)):
            raise TypeError(f"register_model expects an nn.Module subclass, got {model_class!r}")
        config_class = getattr(model_class, "config_class", None)
        if not (isinstance(config_class, type) and issubclass(config_class, Config)):
            raise TypeError(
                f"{model_class.__name__}.config_class must be a Config subclass, "
                f"got {config_class!r}"
            )
        config_class.check_keys(defaults)
        entry = ModelEntry(name, model_class, config_class, MappingProxyType(dict(defaults)))
        existing = _REGISTRY.get(name)
        if existing is not None and not _same_entry(existing, entry):
            raise ValueError(
                f"name {name!r} is already registered to {existing.model_class.__qualname__}"
            )
        _REGISTRY[name] = entry
        return model_class

    return decorator


def _same_entry(a: ModelEntry, b: ModelEntry) -> bool:
    # Re-importing a module (e.g. under importlib reloads) re-registers an equal entry.
    return (
        a.model_class.__module__ == b.model_class.__module__
        and a.model_class.__qualname__ == b.model_class.__qualname__
        and dict(a.defaults) == dict(b.defaults)
    )


def get_model_entry(name: str) -> ModelEntry:
    """Return the registry entry for ``name``.

    Parameters
    ----------
    name : str
        A registered name.

    Returns
    -------
    ModelEntry
        The entry.

    Raises
    ------
    ValueError
        If ``name`` is unknown; the message lists the closest registered names.

    Examples
    --------
    >>> get_model_entry("no_such_model")
    Traceback (most recent call last):
        ...
    ValueError: unknown model name 'no_such_model'...
    """
    entry = _REGISTRY.get(name) if isinstance(name, str) else None
    if entry is None:
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=5, cutoff=0.4)
        hint = f"; closest matches: {close!r}" if close else ""
        raise ValueError(
            f"unknown model name {name!r}{hint}; call list_models() for all "
            f"{len(_REGISTRY)} registered names"
        )
    return entry


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build a registered model, applying config ``overrides`` to the name's defaults.

    Parameters
    ----------
    name : str
        A name from :func:`list_models`.
    **overrides
        Config fields to set, e.g. ``n_classes=5``.

    Returns
    -------
    torch.nn.Module
        A freshly initialised model whose ``config`` reflects the overrides.

    Raises
    ------
    ValueError
        If ``name`` is unknown (closest names listed) or an override is not a config field.

    Examples
    --------
    >>> create_model("vitt")
    Traceback (most recent call last):
        ...
    ValueError: unknown model name 'vitt'...
    """
    entry = get_model_entry(name)
    return entry.model_class(entry.build_config(**overrides))


def list_models(pattern: str | None = None) -> list[str]:
    """Return the sorted registered names, optionally filtered by a shell-style pattern.

    Parameters
    ----------
    pattern : str, optional
        An :mod:`fnmatch` pattern such as ``"*vit*"``.

    Returns
    -------
    list of str
        Matching names, sorted.

    Examples
    --------
    >>> isinstance(list_models(), list)
    True
    >>> list_models("no-such-*")
    []
    """
    names = sorted(_REGISTRY)
    if pattern is None:
        return names
    return [n for n in names if fnmatch.fnmatchcase(n, pattern)]


def model_name_of(model: nn.Module) -> str:
    """Return a registry name that rebuilds ``model`` from its config.

    The first name registered for the model's class is returned; because the model's
    config is complete, any name of the class rebuilds it.

    Parameters
    ----------
    model : torch.nn.Module
        A model built from a registered class (DDP/compiled wrappers are unwrapped).

    Returns
    -------
    str
        The registry name.

    Raises
    ------
    ValueError
        If the model's class is not registered.

    Examples
    --------
    >>> from torch import nn
    >>> model_name_of(nn.Linear(2, 2))
    Traceback (most recent call last):
        ...
    ValueError: model must be an instance of a registered model class, got Linear...
    """
    inner = unwrap_model(model)
    for entry in _REGISTRY.values():
        if type(inner) is entry.model_class:
            return entry.name
    raise ValueError(
        f"model must be an instance of a registered model class, got {type(inner).__name__}; "
        "decorate the class with @register_model"
    )


def unwrap_model(model: nn.Module) -> nn.Module:
    """Return the user model inside DistributedDataParallel/DataParallel or torch.compile.

    Parameters
    ----------
    model : torch.nn.Module
        A model, possibly wrapped.

    Returns
    -------
    torch.nn.Module
        The innermost wrapped module.

    Examples
    --------
    >>> from torch import nn
    >>> lin = nn.Linear(2, 2)
    >>> unwrap_model(nn.DataParallel(lin)) is lin
    True
    """
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
            continue
        inner = getattr(model, "_orig_mod", None)
        if type(model).__name__ == "OptimizedModule" and isinstance(inner, nn.Module):
            model = inner
        else:
            return model
