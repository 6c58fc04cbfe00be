"""Typed configuration base shared by every model and recipe in cellvision.

Every configuration is a frozen, keyword-only dataclass deriving from :class:`Config`.
The base class adds validated construction from plain data (``from_dict``/``from_json``),
flat dot-joined dictionaries for hyper-parameter sweeps (``to_flat_dict``/``from_flat_dict``)
and :meth:`Config.replace`, which re-runs the subclass validation.

Subclasses validate their fields in ``__post_init__`` with the small ``check_*`` helpers in
this module, so that every error names the field, the offending value and what was expected.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Literal, TypeVar, Union

from typing_extensions import Self

__all__ = [
    "Config",
    "check_choice",
    "check_non_negative_int",
    "check_positive_float",
    "check_positive_int",
    "check_probability",
]

_C = TypeVar("_C", bound="Config")

_TRUE_STRINGS = frozenset({"true", "yes", "on", "1"})
_FALSE_STRINGS = frozenset({"false", "no", "off", "0"})


def check_positive_int(name: str, value: object) -> None:
    """Raise unless ``value`` is an ``int`` (not ``bool``) greater than zero.

    Parameters
    ----------
    name : str
        Field or argument name used in the error message.
    value : object
        The value to check.

    Raises
    ------
    TypeError
        If ``value`` is not an integer.
    ValueError
        If ``value`` is zero or negative.

    Examples
    --------
    >>> check_positive_int("n_blocks", 4)
    >>> check_positive_int("n_blocks", 0)
    Traceback (most recent call last):
        ...
    ValueError: n_blocks must be a positive integer, got 0
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a positive integer, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_non_negative_int(name: str, value: object) -> None:
    """Raise unless ``value`` is an ``int`` (not ``bool``) greater than or equal to zero.

    Parameters
    ----------
    name : str
        Field or argument name used in the error message.
    value : object
        The value to check.

    Raises
    ------
    TypeError
        If ``value`` is not an integer.
    ValueError
        If ``value`` is negative.

    Examples
    --------
    >>> check_non_negative_int("gap_hours", 0)
    >>> check_non_negative_int("gap_hours", -1)
    Traceback (most recent call last):
        ...
    ValueError: gap_hours must be a non-negative integer, got -1
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a non-negative integer, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


def check_positive_float(name: str, value: object) -> None:
    """Raise unless ``value`` is a finite real number greater than zero.

    Parameters
    ----------
    name : str
        Field or argument name used in the error message.
    value : object
        The value to check.

    Raises
    ------
    TypeError
        If ``value`` is not a real number.
    ValueError
        If ``value`` is not finite or not positive.

    Examples
    --------
    >>> check_positive_float("lr", 1e-3)
    >>> check_positive_float("lr", float("nan"))
    Traceback (most recent call last):
        ...
    ValueError: lr must be a finite number > 0, got nan
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a finite number > 0, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def check_probability(name: str, value: object, *, inclusive_high: bool = False) -> None:
    """Raise unless ``value`` is a real number in ``[0, 1)`` (or ``[0, 1]``).

    Parameters
    ----------
    name : str
        Field or argument name used in the error message.
    value : object
        The value to check.
    inclusive_high : bool, default False
        Accept exactly ``1.0`` as well.

    Raises
    ------
    TypeError
        If ``value`` is not a real number.
    ValueError
        If ``value`` is NaN or outside the interval.

    Examples
    --------
    >>> check_probability("dropout", 0.1)
    >>> check_probability("dropout", 1.0)
    Traceback (most recent call last):
        ...
    ValueError: dropout must be in [0, 1), got 1.0
    """
    interval = "[0, 1]" if inclusive_high else "[0, 1)"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number in {interval}, got {value!r}")
    ok = 0.0 <= value <= 1.0 if inclusive_high else 0.0 <= value < 1.0
    if not ok:  # also rejects NaN, for which every comparison is False
        raise ValueError(f"{name} must be in {interval}, got {value!r}")


def check_choice(name: str, value: object, choices: Iterable[object]) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``.

    Parameters
    ----------
    name : str
        Field or argument name used in the error message.
    value : object
        The value to check.
    choices : iterable
        The accepted values.

    Raises
    ------
    ValueError
        If ``value`` is not among ``choices``.

    Examples
    --------
    >>> check_choice("pool", "cls", ("cls", "mean"))
    >>> check_choice("pool", "max", ("cls", "mean"))
    Traceback (most recent call last):
        ...
    ValueError: pool must be one of ('cls', 'mean'), got 'max'
    """
    options = tuple(choices)
    if value not in options:
        raise ValueError(f"{name} must be one of {options!r}, got {value!r}")


class Config:
    """Base class for frozen, keyword-only dataclass configurations.

    Subclasses are declared with ``@dataclasses.dataclass(frozen=True, kw_only=True)`` and
    validate their fields in ``__post_init__``. Field types drive conversion from plain data:
    JSON lists become tuples for ``tuple`` fields, nested dictionaries become nested configs,
    and (for flat dictionaries only) strings are parsed into ``int``/``float``/``bool`` fields.

    Examples
    --------
    >>> import dataclasses
    >>> @dataclasses.dataclass(frozen=True, kw_only=True)
    ... class OptimConfig(Config):
    ...     lr: float = 1e-3
    ...     betas: tuple[float, float] = (0.9, 0.999)
    ...     def __post_init__(self) -> None:
    ...         check_positive_float("lr", self.lr)
    >>> @dataclasses.dataclass(frozen=True, kw_only=True)
    ... class RunConfig(Config):
    ...     epochs: int = 10
    ...     optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    >>> cfg = RunConfig(epochs=3)
    >>> cfg.to_flat_dict()
    {'epochs': 3, 'optim.lr': 0.001, 'optim.betas': (0.9, 0.999)}
    >>> RunConfig.from_flat_dict({"epochs": "5", "optim.lr": "0.01"})
    RunConfig(epochs=5, optim=OptimConfig(lr=0.01, betas=(0.9, 0.999)))
    >>> RunConfig.from_json(cfg.to_json()) == cfg
    True
    >>> cfg.replace(epochs=0).epochs
    0
    """

    # Marker used by type checkers; concrete subclasses are dataclasses.
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    # ------------------------------------------------------------------ introspection
    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """Return the names of the init fields, in declaration order.

        Returns
        -------
        tuple of str
            The field names accepted by the constructor.

        Examples
        --------
        >>> import dataclasses
        >>> @dataclasses.dataclass(frozen=True, kw_only=True)
        ... class C(Config):
        ...     a: int = 1
        ...     b: str = "x"
        >>> C.field_names()
        ('a', 'b')
        """
        _require_dataclass(cls)
        return tuple(f.name for f in dataclasses.fields(cls) if f.init)

    @classmethod
    def check_keys(cls, keys: Iterable[str]) -> None:
        """Raise ``ValueError`` if any key is not a field of this config.

        Parameters
        ----------
        keys : iterable of str
            Candidate field names.

        Raises
        ------
        ValueError
            Listing the unknown keys and the valid field names.

        Examples
        --------
        >>> import dataclasses
        >>> @dataclasses.dataclass(frozen=True, kw_only=True)
        ... class C(Config):
        ...     depth: int = 1
        >>> C.check_keys(["depth"])
        >>> C.check_keys(["dept"])
        Traceback (most recent call last):
            ...
        ValueError: unknown C field(s) ['dept']; valid fields are ['depth']
        """
        valid = cls.field_names()
        unknown = sorted(k for k in keys if k not in valid)
        if unknown:
            raise ValueError(
                f"unknown {cls.__name__} field(s) {unknown!r}; valid fields are {list(valid)!r}"
            )

    # ------------------------------------------------------------------ plain data
    def to_dict(self) -> dict[str, Any]:
        """Return the configuration as a dictionary (nested configs become dictionaries).

        Returns
        -------
        dict
            Field name to value; tuples stay tuples.

        Examples
        --------
        >>> import dataclasses
        >>> @dataclasses.dataclass(frozen=True, kw_only=True)
        ... class C(Config):
        ...     sizes: tuple[int, ...] = (1, 2)
        >>> C().to_dict()
        {'sizes': (1, 2)}
        """
        out: dict[str, Any] = {}
        for name in self.field_names():
            value = getattr(self, name)
            out[name] = value.to_dict() if isinstance(value, Config) else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Build a config from a mapping, converting values to the declared field types.

        Lists become tuples for tuple fields, integers become floats for float fields and
        nested mappings become nested configs. Strings are *not* parsed into numbers here;
        use :meth:`from_flat_dict` for sweep output where everything may be a string.

        Parameters
        ----------
        data : mapping
            Field name to value. Missing fields take their defaults.

        Returns
        -------
        Config
            A validated instance of ``cls``.

        Raises
        ------
        ValueError
            If a key is not a field (the message lists the valid names) or a value is invalid.
        TypeError
            If ``data`` is not a mapping or a value cannot be converted to the field's type.

        Examples
        --------
        >>> import dataclasses
        >>> @dataclasses.dataclass(frozen=True, kw_only=True)
        ... class C(Config):
        ...     scale: float = 1.0
        ...     sizes: tuple[int, ...] = ()
        >>> C.from_dict({"scale": 2, "sizes": [3, 4]})
        C(scale=2.0, sizes=(3, 4))
        """
        return cls._from_mapping(data, parse_strings=False)

    def to_json(self, *, indent: int | None = 2) -> str:
        """Serialise to a JSON string.

        Parameters
        ----------
        indent : int or None, default 2
            Passed to :func:`json.dumps`.

        Returns
        -------
        str
            The JSON text; :meth:`from_json` restores an equal config.

        Examples
        --------
        >>> import dataclasses
        >>> @dataclasses.dataclass(frozen=True, kw_only=True)
        ... class C(Config):
        ...     sizes: tuple[int, ...] = (1, 2)
        >>> C().to_json(indent=None)
        '{"sizes": [1, 2]}'
        """
        return json.dumps(self.to_dict(), indent=indent, allow_nan=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> Self:
        """Build a config from JSON text produced by :meth:`to_json`.

        Parameters
        ----------
        text : str or bytes
            JSON object text.

        Returns
        -------
        Config
            A validated instance of ``cls``.

        Raises
        ------
        ValueError
            If the text is not a JSON object or holds unknown or invalid fields.

        Examples
        --------
        >>> import dataclasses
        >>> @dataclasses.dataclass(frozen=True, kw_only=True)
        ... class C(Config):
        ...     sizes: tuple[int, ...] = (1, 2)
        >>> C.from_json('{"sizes": [5]}')
        C(sizes=(5,))
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"text must be a JSON object, got invalid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"text must be a JSON object, got {type(data).__name__}")
        return cls.from_dict(data)

    # ------------------------------------------------------------------ flat dictionaries
    def to_flat_dict(self, *, sep: str = ".") -> dict[str, Any]:
        """Return a flat dictionary with ``sep``-joined keys for nested configs.

        Parameters
        ----------
        sep : str, default "."
            Separator between the names of nested fields.

        Returns
        -------
        dict
            For example ``{"optim.lr": 0.001}``; suitable for wandb or Optuna parameters.

        Examples
        --------
        >>> import dataclasses
        >>> @dataclasses.dataclass(frozen=True, kw_only=True)
        ... class Inner(Config):
        ...     width: int = 8
        >>> @dataclasses.dataclass(frozen=True, kw_only=True)
        ... class Outer(Config):
        ...     inner: Inner = dataclasses.field(default_factory=Inner)
        >>> Outer().to_flat_dict()
        {'inner.width': 8}
        """
        out: dict[str, Any] = {}
        for name in self.field_names():
            value = getattr(self, name)
            if isinstance(value, Config):
                for key, inner in value.to_flat_dict(sep=sep).items():
                    out[f"{name}{sep}{key}"] = inner
            else:
                out[name] = value
        return out

    @classmethod
    def from_flat_dict(cls, data: Mapping[str, Any], *, sep: str = ".") -> Self:
        """Build a config from a flat dictionary such as a sweep's parameters.

        Values are coerced to the declared field types: ``"3"`` becomes ``3`` for an ``int``
        field, ``"1e-3"`` becomes ``0.001`` for a ``float`` field, ``"true"``/``"false"``
        become booleans, and a JSON list string becomes a tuple for a tuple field.

        Parameters
        ----------
        data : mapping
            Keys are field names, joined with ``sep`` for nested configs.
        sep : str, default "."
            Separator between the names of nested fields.

        Returns
        -------
        Config
            A validated instance of ``cls``.

        Raises
        ------
        ValueError
            If a key is unknown or a value cannot be parsed for its field.

        Examples
        --------
        >>> import dataclasses
        >>> @dataclasses.dataclass(frozen=True, kw_only=True)
        ... class C(Config):
        ...     depth: int = 1
        ...     sizes: tuple[int, ...] = ()
        >>> C.from_flat_dict({"depth": "3", "sizes": "[8, 16]"})
        C(depth=3, sizes=(8, 16))
        """
        if not isinstance(data, Mapping):
            raise TypeError(f"data must be a mapping, got {type(data).__name__}")
        nested: dict[str, Any] = {}
        for key, value in data.items():
            if not isinstance(key, str):
                raise TypeError(f"data keys must be strings, got {key!r}")
            head, dot, rest = key.partition(sep)
            if dot:
                sub = nested.setdefault(head, {})
                if not isinstance(sub, dict):
                    raise ValueError(f"key {key!r} conflicts with the plain key {head!r}")
                sub[rest] = value
            else:
                if head in nested and isinstance(nested[head], dict):
                    raise ValueError(f"key {key!r} conflicts with nested keys {head + sep}*")
                nested[head] = value
        return cls._from_mapping(nested, parse_strings=True, sep=sep)

    # ------------------------------------------------------------------ replace
    def replace(self, **changes: Any) -> Self:
        """Return a copy with some fields changed; the copy is validated again.

        Parameters
        ----------
        **changes
            New field values.

        Returns
        -------
        Config
            A new, validated instance.

        Raises
        ------
        ValueError
            If a key is not a field or the new values are invalid.

        Examples
        --------
        >>> import dataclasses
        >>> @dataclasses.dataclass(frozen=True, kw_only=True)
        ... class C(Config):
        ...     depth: int = 1
        ...     def __post_init__(self) -> None:
        ...         check_positive_int("depth", self.depth)
        >>> C().replace(depth=4)
        C(depth=4)
        >>> C().replace(depth=0)
        Traceback (most recent call last):
            ...
        ValueError: depth must be a positive integer, got 0
        """
        self.check_keys(changes)
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ internals
    @classmethod
    def _from_mapping(cls, data: Mapping[str, Any], *, parse_strings: bool, sep: str = ".") -> Self:
        _require_dataclass(cls)
        if not isinstance(data, Mapping):
            raise TypeError(f"data must be a mapping, got {type(data).__name__}")
        cls.check_keys(data)
        hints = _field_types(cls)  # type: ignore[arg-type]
        kwargs = {
            name: _coerce(value, hints[name], f"{cls.__name__}.{name}", parse_strings, sep)
            for name, value in data.items()
        }
        return cls(**kwargs)


@functools.cache
def _field_types(cls: type[Config]) -> dict[str, Any]:
    """Resolve the field annotations of ``cls`` (strings under postponed evaluation).

    Nested config classes are also looked up by the class of their default value, so a
    config declared inside a function or a doctest still resolves.
    """
    local_names: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        default: Any = f.default
        if f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        if isinstance(default, Config):
            local_names[type(default).__name__] = type(default)
    try:
        return typing.get_type_hints(cls, localns=local_names)
    except NameError as exc:
        raise TypeError(
            f"cannot resolve the field types of {cls.__name__}: {exc}; declare the config "
            "and the classes its annotations name at module level"
        ) from exc


def _require_dataclass(cls: type) -> None:
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls.__name__} must be declared with @dataclasses.dataclass")


def _is_union(tp: Any) -> bool:
    origin = typing.get_origin(tp)
    return origin is Union or origin is types.UnionType


def _coerce(value: Any, tp: Any, name: str, parse_strings: bool, sep: str) -> Any:
    """Convert ``value`` to the annotated type ``tp`` where the conversion is lossless."""
    if tp is Any or tp is object:
        return value
    if _is_union(tp):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors: list[str] = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, name, parse_strings, sep)
            except (TypeError, ValueError) as exc:
                errors.append(str(exc))
        raise TypeError(f"{name} must match {tp}, got {value!r} ({'; '.join(errors)})")
    origin = typing.get_origin(tp)
    if origin is Literal:
        options = typing.get_args(tp)
        if value in options:
            return value
        raise ValueError(f"{name} must be one of {options!r}, got {value!r}")
    if isinstance(tp, type) and issubclass(tp, Config):
        if isinstance(value, tp):
            return value
        if isinstance(value, Mapping):
            return tp._from_mapping(value, parse_strings=parse_strings, sep=sep)
        raise TypeError(f"{name} must be a mapping for {tp.__name__}, got {value!r}")
    if origin is tuple:
        if parse_strings and isinstance(value, str):
            value = _parse_json_sequence(value)
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"{name} must be a list or tuple, got {value!r}")
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], name, parse_strings, sep) for v in value)
        if args and len(args) != len(value):
            raise ValueError(f"{name} must have {len(args)} items, got {value!r}")
        if not args:
            return tuple(value)
        return tuple(
            _coerce(v, a, name, parse_strings, sep) for v, a in zip(value, args, strict=True)
        )
    if tp is bool:
        if isinstance(value, bool):
            return value
        if parse_strings and isinstance(value, str):
            low = value.strip().lower()
            if low in _TRUE_STRINGS:
                return True
            if low in _FALSE_STRINGS:
                return False
        raise TypeError(f"{name} must be a bool, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise TypeError(f"{name} must be an int, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if parse_strings and isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise TypeError(f"{name} must be an int, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise TypeError(f"{name} must be a float, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if parse_strings and isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
        raise TypeError(f"{name} must be a float, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise TypeError(f"{name} must be a str, got {value!r}")
    # Unsupported annotations (e.g. custom classes) are passed through for the
    # dataclass's own validation to judge.
    return value


def _parse_json_sequence(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        # Also accept "1,2,3" and "(1, 2)" as commonly typed on command lines.
        stripped = text.strip().strip("()[]")
        if not stripped:
            return []
        return [part.strip() for part in stripped.split(",")]
