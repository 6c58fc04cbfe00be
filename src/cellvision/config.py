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
import re
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Literal, TypeVar, Union

import numpy as np
from typing_extensions import Self

__all__ = [
    "Config",
    "as_builtin_number",
    "check_choice",
    "check_device",
    "check_non_negative_int",
    "check_positive_float",
    "check_positive_int",
    "check_probability",
    "check_seed",
]

_C = TypeVar("_C", bound="Config")

_TRUE_STRINGS = frozenset({"true", "yes", "on", "1"})
_FALSE_STRINGS = frozenset({"false", "no", "off", "0"})
_NONE_STRINGS = frozenset({"none", "null"})
# ASCII digits only: int() and float() also accept "1_0" and non-ASCII digits such as "\u0663".
_INT_TEXT = re.compile(r"[+-]?[0-9]+")
_FLOAT_TEXT = re.compile(
    r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)", re.IGNORECASE
)


def as_builtin_number(value: object) -> object:
    """Return numpy scalars as the equal Python ``bool``/``int``/``float``; anything else as is.

    This is the one coercion behind every ``check_*`` helper, so numpy numbers (``np.int64``
    from ``array.shape`` or ``argmax``, ``np.float32`` from a computation) are accepted wherever
    Python numbers are, and the stored value is a plain Python number that serialises to JSON.
    ``numpy.bool_`` becomes ``bool`` (and is therefore still refused where an integer is needed).

    Parameters
    ----------
    value : object
        Any value.

    Returns
    -------
    object
        ``bool(value)``, ``int(value)`` or ``float(value)`` for a numpy bool, integer or floating
        scalar; ``value`` unchanged otherwise.

    Examples
    --------
    >>> as_builtin_number(np.int64(4)), as_builtin_number(np.float32(0.5)), as_builtin_number("a")
    (4, 0.5, 'a')
    >>> type(as_builtin_number(np.float64(0.25)))
    <class 'float'>
    """
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def check_positive_int(name: str, value: object) -> int:
    """Return ``value`` as an ``int``; raise unless it is an integer (not ``bool``) above zero.

    Numpy integers are accepted (see :func:`as_builtin_number`).

    Parameters
    ----------
    name : str
        Field or argument name used in the error message.
    value : object
        The value to check.

    Returns
    -------
    int
        The value as a Python ``int``.

    Raises
    ------
    TypeError
        If ``value`` is not an integer.
    ValueError
        If ``value`` is zero or negative.

    Examples
    --------
    >>> check_positive_int("n_blocks", np.int64(4))
    4
    >>> check_positive_int("n_blocks", 0)
    Traceback (most recent call last):
        ...
    ValueError: n_blocks must be a positive integer, got 0
    """
    number = as_builtin_number(value)
    if isinstance(number, bool) or not isinstance(number, int):
        raise TypeError(f"{name} must be a positive integer, got {value!r}")
    if number <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return number


def check_non_negative_int(name: str, value: object) -> int:
    """Return ``value`` as an ``int``; raise unless it is an integer (not ``bool``) ``>= 0``.

    Numpy integers are accepted (see :func:`as_builtin_number`).

    Parameters
    ----------
    name : str
        Field or argument name used in the error message.
    value : object
        The value to check.

    Returns
    -------
    int
        The value as a Python ``int``.

    Raises
    ------
    TypeError
        If ``value`` is not an integer.
    ValueError
        If ``value`` is negative.

    Examples
    --------
    >>> check_non_negative_int("gap_hours", 0)
    0
    >>> check_non_negative_int("gap_hours", -1)
    Traceback (most recent call last):
        ...
    ValueError: gap_hours must be a non-negative integer, got -1
    """
    number = as_builtin_number(value)
    if isinstance(number, bool) or not isinstance(number, int):
        raise TypeError(f"{name} must be a non-negative integer, got {value!r}")
    if number < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return number


def check_seed(name: str, value: object) -> int:
    """Return a random seed as an ``int``; raise unless it is an integer in ``[0, 2**64)``.

    Seeds are reduced to 64 bits by the generators, so a larger seed would silently draw the
    same numbers as a smaller one (``2**64`` as ``0``); a negative one is refused by numpy with
    a message that names no argument.

    Parameters
    ----------
    name : str
        Argument name used in the error message.
    value : object
        The value to check (numpy integers are accepted).

    Returns
    -------
    int
        The seed as a Python ``int``.

    Raises
    ------
    TypeError
        If ``value`` is not an integer.
    ValueError
        If ``value`` is negative or at least ``2**64``.

    Examples
    --------
    >>> check_seed("seed", np.uint64(7))
    7
    >>> check_seed("seed", 2**64)
    Traceback (most recent call last):
        ...
    ValueError: seed must be an integer in [0, 2**64), got 18446744073709551616
    """
    number = as_builtin_number(value)
    if isinstance(number, bool) or not isinstance(number, int):
        raise TypeError(f"{name} must be an integer in [0, 2**64), got {value!r}")
    if not 0 <= number < 2**64:
        raise ValueError(f"{name} must be an integer in [0, 2**64), got {value!r}")
    return number


def check_positive_float(name: str, value: object) -> float:
    """Return ``value`` as a ``float``; raise unless it is a finite real number above zero.

    Numpy numbers are accepted (see :func:`as_builtin_number`).

    Parameters
    ----------
    name : str
        Field or argument name used in the error message.
    value : object
        The value to check.

    Returns
    -------
    float
        The value as a Python ``float``.

    Raises
    ------
    TypeError
        If ``value`` is not a real number.
    ValueError
        If ``value`` is not finite or not positive.

    Examples
    --------
    >>> check_positive_float("lr", np.float32(0.5))
    0.5
    >>> check_positive_float("lr", float("nan"))
    Traceback (most recent call last):
        ...
    ValueError: lr must be a finite number > 0, got nan
    """
    number = as_builtin_number(value)
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        raise TypeError(f"{name} must be a finite number > 0, got {value!r}")
    try:
        result = float(number)
    except OverflowError:  # an int beyond the float range
        raise ValueError(
            f"{name} must be a finite number > 0, got an integer of {len(str(number))} digits"
        ) from None
    if not math.isfinite(result) or result <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return result


def check_probability(name: str, value: object, *, inclusive_high: bool = False) -> float:
    """Return ``value`` as a ``float``; raise unless it is a real number in ``[0, 1)`` (``[0, 1]``).

    Numpy numbers are accepted (see :func:`as_builtin_number`).

    Parameters
    ----------
    name : str
        Field or argument name used in the error message.
    value : object
        The value to check.
    inclusive_high : bool, default False
        Accept exactly ``1.0`` as well.

    Returns
    -------
    float
        The value as a Python ``float``.

    Raises
    ------
    TypeError
        If ``value`` is not a real number.
    ValueError
        If ``value`` is NaN or outside the interval.

    Examples
    --------
    >>> check_probability("dropout", np.float32(0.5))
    0.5
    >>> check_probability("dropout", 1.0)
    Traceback (most recent call last):
        ...
    ValueError: dropout must be in [0, 1), got 1.0
    """
    interval = "[0, 1]" if inclusive_high else "[0, 1)"
    number = as_builtin_number(value)
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        raise TypeError(f"{name} must be a number in {interval}, got {value!r}")
    ok = 0.0 <= number <= 1.0 if inclusive_high else 0.0 <= number < 1.0
    if not ok:  # also rejects NaN, for which every comparison is False
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return float(number)


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
        unknown = sorted((k for k in keys if k not in valid), key=repr)
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
            If the text is not UTF-8, not a JSON object or holds unknown or invalid fields.
        TypeError
            If ``text`` is neither ``str`` nor ``bytes``.

        Examples
        --------
        >>> import dataclasses
        >>> @dataclasses.dataclass(frozen=True, kw_only=True)
        ... class C(Config):
        ...     sizes: tuple[int, ...] = (1, 2)
        >>> C.from_json('{"sizes": [5]}')
        C(sizes=(5,))
        """
        if isinstance(text, (bytes, bytearray)):
            raw = bytes(text)
            try:
                text = raw.decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                raise ValueError(
                    f"text must be UTF-8 encoded JSON, got undecodable bytes "
                    f"{raw[exc.start : exc.start + 8]!r} at byte {exc.start}"
                ) from None
        elif not isinstance(text, str):
            raise TypeError(f"text must be a str or bytes, got {type(text).__name__}")
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
        _check_sep(sep)
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
        become booleans, ``"none"``/``"null"`` become ``None`` for an optional field, and a
        JSON list string becomes a tuple for a tuple field. Number strings must be plain ASCII
        decimal literals: ``"1_0"`` and non-ASCII digits are refused.

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
            If a key is unknown, ``sep`` is empty or a value cannot be parsed for its field.

        Examples
        --------
        >>> import dataclasses
        >>> @dataclasses.dataclass(frozen=True, kw_only=True)
        ... class C(Config):
        ...     depth: int = 1
        ...     sizes: tuple[int, ...] = ()
        ...     width: int | None = 4
        >>> C.from_flat_dict({"depth": "3", "sizes": "[8, 16]", "width": "none"})
        C(depth=3, sizes=(8, 16), width=None)
        """
        _check_sep(sep)
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
        for key in data:
            if not isinstance(key, str):
                raise TypeError(f"data keys must be field names (str), got {key!r}")
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


def _check_sep(sep: object) -> None:
    if not isinstance(sep, str) or not sep:
        raise ValueError(f"sep must be a non-empty string, got {sep!r}")


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
    value = as_builtin_number(value)
    if _is_union(tp):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        if (
            parse_strings
            and type(None) in args
            and isinstance(value, str)
            and value.strip().lower() in _NONE_STRINGS
        ):
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
        if parse_strings and isinstance(value, str) and _INT_TEXT.fullmatch(value.strip()):
            return int(value.strip())
        raise TypeError(f"{name} must be an int, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise TypeError(f"{name} must be a float, got {value!r}")
        if isinstance(value, (int, float)):
            try:
                return float(value)
            except OverflowError:  # an int beyond the float range, e.g. 10**400 from JSON
                raise ValueError(
                    f"{name} must be a number within the float range, got an integer of "
                    f"{len(str(abs(value)))} digits"
                ) from None
        if parse_strings and isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
            return float(value.strip())
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


def check_device(name: str, value: object) -> Any:
    """Return ``value`` as a :class:`torch.device` that exists on this machine.

    Parameters
    ----------
    name : str
        Argument name used in the error message.
    value : str or torch.device
        For example ``"cpu"``, ``"cuda"`` or ``torch.device("cuda", 1)``.

    Returns
    -------
    torch.device
        The parsed device.

    Raises
    ------
    TypeError
        If ``value`` is neither a string nor a :class:`torch.device`.
    ValueError
        If it names no device type torch knows (``"tpu"``), the ``"meta"`` device (which holds
        no data), or a device this machine lacks (``"cuda"`` without a GPU, ``"cuda:3"`` with
        two GPUs).

    Examples
    --------
    >>> check_device("device", "cpu")
    device(type='cpu')
    >>> check_device("device", "tpu")
    Traceback (most recent call last):
        ...
    ValueError: device must be a torch device such as 'cpu' or 'cuda', got 'tpu'
    """
    import torch

    if not isinstance(value, (str, torch.device)):
        raise TypeError(f"{name} must be a str or torch.device, got {value!r}")
    try:
        device = torch.device(value)
    except (RuntimeError, ValueError):
        raise ValueError(
            f"{name} must be a torch device such as 'cpu' or 'cuda', got {value!r}"
        ) from None
    if device.type == "meta":
        raise ValueError(f"{name} must be a device that holds data, got {value!r} (meta)")
    if device.type == "cpu":
        return device
    try:  # an empty tensor is the cheapest probe of whether the device exists here
        torch.empty(0, device=device)
    except Exception as exc:  # torch raises RuntimeError, AssertionError, ImportError, ...
        text = str(exc).strip()
        reason = text.splitlines()[0].split(". ")[0][:120] if text else type(exc).__name__
        raise ValueError(
            f"{name} must be a device available on this machine, got {value!r} ({reason})"
        ) from None
    return device
