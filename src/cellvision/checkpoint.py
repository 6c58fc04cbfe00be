"""Safe checkpoints: registry name + JSON-ready config + tensors, loaded without arbitrary pickles.

A checkpoint written by :func:`save_checkpoint` is a :func:`torch.save` file holding only plain
containers, strings, numbers and tensors::

    {"format": "cellvision.checkpoint", "format_version": 1,
     "model_name": "cellcycle_vit", "config": {...JSON-ready...},
     "state_dict": {...tensors...}, "optimizer_state_dict": {...} or None,
     "epoch": int or None, "extra": ... or None,
     "cellvision_version": "...", "torch_version": "..."}

:func:`load_checkpoint` reads it with ``torch.load(weights_only=True)``, whose restricted
unpickler refuses any other object *before* constructing it, so a crafted file cannot run code.
The model is then rebuilt from the registry (:func:`cellvision.models.get_model_entry`) and the
config, and the weights are loaded strictly.

A crafted or corrupted file cannot make loading allocate without bound either: the config's
parameter count is estimated from its fields and compared with ``max_parameters`` and with the
number of values the file holds, and the model is first built on the ``meta`` device (no
memory) to compare every tensor shape with the file's before it is built for real.

What :func:`save_checkpoint` accepts it also loads back equal: numpy scalars, ``IntEnum`` and
``str``/``float``/``int``/``dict``/``list``/``tuple`` subclasses (``defaultdict``, named
tuples) are stored as the equal plain Python values; anything else is refused on save with a
``TypeError`` naming its key path.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from cellvision.config import Config, as_builtin_number, check_device, check_positive_int
from cellvision.models import get_model_entry, model_name_of, unwrap_model
from cellvision.models._common import MAX_PARAMETERS

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MAX_PARAMETERS",
    "Checkpoint",
    "UnsafeCheckpointError",
    "load_checkpoint",
    "save_checkpoint",
]

#: Marker stored under ``"format"`` in every checkpoint.
FORMAT_NAME = "cellvision.checkpoint"
#: Version of the checkpoint layout written by this release; older versions stay readable.
FORMAT_VERSION = 1

_REQUIRED_KEYS = ("format_version", "model_name", "config", "state_dict")


class UnsafeCheckpointError(ValueError):
    """Raised when a file holds pickled objects other than tensors and plain containers.

    Nothing in such a file is executed: ``torch.load(weights_only=True)`` stops at the first
    disallowed object.

    Examples
    --------
    >>> issubclass(UnsafeCheckpointError, ValueError)
    True
    """


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint.

    Parameters
    ----------
    model : torch.nn.Module
        The rebuilt model with the saved weights (in train mode, like any fresh module).
    model_name : str
        Registry name the model was rebuilt from.
    config : Config
        The model's validated config.
    epoch : int or None
        The epoch passed to :func:`save_checkpoint`.
    optimizer_state_dict : dict or None
        Pass it to ``optimizer.load_state_dict`` to resume training.
    extra : object
        The ``extra`` data passed to :func:`save_checkpoint`.
    format_version : int
        Layout version of the file.
    metadata : dict
        ``cellvision_version`` and ``torch_version`` of the writer.

    Examples
    --------
    >>> Checkpoint.__dataclass_fields__.keys() >= {"model", "config", "epoch"}
    True
    """

    model: nn.Module
    model_name: str
    config: Config
    epoch: int | None
    optimizer_state_dict: dict[str, Any] | None
    extra: Any
    format_version: int
    metadata: dict[str, Any]


def _plain_scalar(value: Any) -> Any:
    """The equal exact ``bool``/``int``/``float``/``str`` of a scalar, or ``NotImplemented``."""
    value = as_builtin_number(value)  # numpy scalars
    if value is None or type(value) in (bool, int, float, str):
        return value
    # Subclasses (IntEnum, np.float64, str enums, ...) would need their class to unpickle; the
    # base-class methods return the equal plain value without calling overridden methods.
    if isinstance(value, bool):  # pragma: no cover - bool cannot be subclassed
        return bool(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, str):
        return str.__str__(value)
    return NotImplemented


def _plain(value: Any, where: str, active: frozenset[int] = frozenset()) -> Any:
    """Return ``value`` as what ``torch.load(weights_only=True)`` accepts, equal to it.

    Raises ``TypeError`` naming the key path of the first value that has no plain equivalent.
    """
    scalar = _plain_scalar(value)
    if scalar is not NotImplemented:
        return scalar
    if isinstance(value, Tensor):
        return value if type(value) in (Tensor, nn.Parameter) else value.as_subclass(Tensor)
    if isinstance(value, torch.dtype):
        return value
    if isinstance(value, (list, tuple, dict)):
        if id(value) in active:
            raise TypeError(f"{where} must not contain itself (a reference cycle)")
        inner = active | {id(value)}
        if isinstance(value, dict):
            out: dict[Any, Any] = OrderedDict() if type(value) is OrderedDict else {}
            for key, item in value.items():
                plain_key = _plain_scalar(key)
                if plain_key is NotImplemented:
                    raise TypeError(f"{where} keys must be strings, numbers or None, got {key!r}")
                out[plain_key] = _plain(item, f"{where}[{key!r}]", inner)
            # Keep the per-module versions that nn.Module.load_state_dict reads.
            metadata = getattr(value, "_metadata", None)
            if isinstance(out, OrderedDict) and metadata is not None:
                out._metadata = metadata  # type: ignore[attr-defined]
            return out
        items = [_plain(item, f"{where}[{i}]", inner) for i, item in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, np.ndarray):
        raise TypeError(
            f"{where} must contain only tensors, numbers, strings, None, lists, tuples and "
            f"dicts, got a numpy array; convert it with torch.from_numpy(...)"
        )
    raise TypeError(
        f"{where} must contain only tensors, numbers, strings, None, lists, tuples and dicts "
        f"(so that it loads with weights_only=True), got {type(value).__name__}"
    )


def _config_data(config: Config) -> dict[str, Any]:
    try:
        data = json.loads(config.to_json())
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"model.config must serialise to JSON, got {type(config).__name__}: {exc}"
        ) from exc
    if not isinstance(data, dict):  # pragma: no cover - Config.to_json always writes an object
        raise TypeError(f"model.config must serialise to a JSON object, got {data!r}")
    return data


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    epoch: int | None = None,
    extra: Any = None,
) -> Path:
    """Write ``model`` (and optionally the optimizer state) to ``path``.

    The file is written to a temporary name in the same directory and renamed into place, so
    an interrupted save never leaves a truncated checkpoint behind.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file; its directory must exist.
    model : torch.nn.Module
        An instance of a registered model class (DDP/compiled wrappers are unwrapped).
    optimizer : torch.optim.Optimizer, optional
        Its ``state_dict()`` is stored for resuming.
    epoch : int, optional
        The epoch to record.
    extra : object, optional
        Additional data made only of tensors, numbers, strings, ``None``, lists, tuples and
        dicts, e.g. ``history.to_dict()`` or class names. numpy scalars and subclasses of
        these types (``IntEnum``, ``defaultdict``, named tuples) are stored as the equal
        plain values, which is what :func:`load_checkpoint` returns.

    Returns
    -------
    pathlib.Path
        The written path.

    Raises
    ------
    ValueError
        If the model's class is not registered.
    TypeError
        If the model has no :class:`~cellvision.config.Config`, ``epoch`` is not an int, or
        ``extra``/the optimizer state holds other objects (the message names the key path,
        e.g. ``extra['scores'][2]``), or contains itself.
    FileNotFoundError
        If the directory of ``path`` does not exist.

    Examples
    --------
    >>> import dataclasses, tempfile, pathlib
    >>> from cellvision.models import register_model
    >>> @dataclasses.dataclass(frozen=True, kw_only=True)
    ... class DocLinearConfig(Config):
    ...     width: int = 3
    >>> @register_model("doc_checkpoint_linear")
    ... class DocLinear(nn.Module):
    ...     config_class = DocLinearConfig
    ...     def __init__(self, config: DocLinearConfig) -> None:
    ...         super().__init__()
    ...         self.config = config
    ...         self.linear = nn.Linear(config.width, 2)
    ...     def forward(self, x: Tensor) -> Tensor:
    ...         return self.linear(x)
    >>> model = DocLinear(DocLinearConfig(width=4))
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = save_checkpoint(pathlib.Path(tmp) / "model.pt", model, epoch=7,
    ...                            extra={"class_names": ["G1", "S"]})
    ...     ckpt = load_checkpoint(path)
    >>> ckpt.model_name, ckpt.config, ckpt.epoch, ckpt.extra
    ('doc_checkpoint_linear', DocLinearConfig(width=4), 7, {'class_names': ['G1', 'S']})
    >>> torch.equal(ckpt.model.linear.weight, model.linear.weight)
    True
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    inner = unwrap_model(model)
    name = model_name_of(inner)
    config = getattr(inner, "config", None)
    if not isinstance(config, Config):
        raise TypeError(f"model.config must be a cellvision Config, got {type(config).__name__}")
    epoch_value = as_builtin_number(epoch)
    if epoch_value is not None and (
        isinstance(epoch_value, bool) or not isinstance(epoch_value, int)
    ):
        raise TypeError(f"epoch must be an int or None, got {epoch!r}")
    extra = _plain(extra, "extra")
    optimizer_state = None
    if optimizer is not None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {optimizer!r}")
        # e.g. lr=np.float64(0.01) from a sweep: stored as the equal float
        optimizer_state = _plain(optimizer.state_dict(), "optimizer state_dict")

    from cellvision import __version__

    payload: dict[str, Any] = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "model_name": name,
        "config": _config_data(config),
        # The OrderedDict keeps its _metadata (per-module versions used by load_state_dict).
        "state_dict": inner.state_dict(),
        "optimizer_state_dict": optimizer_state,
        "epoch": epoch_value,
        "extra": extra,
        "cellvision_version": __version__,
        "torch_version": str(torch.__version__),
    }
    target = Path(path)
    if not target.parent.is_dir():
        raise FileNotFoundError(f"path's directory must exist, got {str(target.parent)!r}")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target


def _read(path: Path, map_location: Any) -> Any:
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights only" in str(exc).lower():
            raise UnsafeCheckpointError(
                f"refusing to load {str(path)!r}: it contains pickled objects other than "
                "tensors and plain containers, which could run arbitrary code; nothing in it "
                f"was run ({first_line})"
            ) from exc
        raise ValueError(
            f"path must be a checkpoint written by save_checkpoint, got unreadable "
            f"file {str(path)!r} ({first_line})"
        ) from exc
    except OSError:
        raise
    except Exception as exc:  # torch's readers raise many types on corrupt or foreign files
        raise ValueError(
            f"path must be a checkpoint written by save_checkpoint, got unreadable "
            f"file {str(path)!r} ({exc})"
        ) from exc


def _validate_payload(payload: Any, path: Path) -> dict[str, Any]:
    where = repr(str(path))
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
        found = sorted(map(str, payload)) if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(
            f"{where} is not a cellvision checkpoint: expected a dict with "
            f"format={FORMAT_NAME!r}, got {found!r}"
        )
    missing = [k for k in _REQUIRED_KEYS if k not in payload]
    if missing:
        raise ValueError(f"checkpoint {where} is missing required key(s) {missing!r}")
    version = payload["format_version"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"checkpoint {where} format_version must be an int >= 1, got {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"checkpoint {where} has format_version {version}, newer than the "
            f"{FORMAT_VERSION} this cellvision reads; upgrade cellvision"
        )
    for key, kind in (("model_name", str), ("config", dict), ("state_dict", dict)):
        if not isinstance(payload[key], kind):
            raise ValueError(
                f"checkpoint {where} {key} must be a {kind.__name__}, got "
                f"{type(payload[key]).__name__}"
            )
    return payload


def _state_values(state_dict: dict[str, Any]) -> int:
    return sum(t.numel() for t in state_dict.values() if isinstance(t, Tensor))


def _check_fits(model: nn.Module, state_dict: dict[str, Any], where: str, name: str) -> None:
    """Compare the model's state (built on meta: no memory) with the file's, key by key."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    if missing or unexpected:
        raise ValueError(
            f"checkpoint {where} weights do not fit {name!r}: missing keys {missing[:10]!r}"
            f"{' ...' if len(missing) > 10 else ''}, unexpected keys {unexpected[:10]!r}"
            f"{' ...' if len(unexpected) > 10 else ''}"
        )
    wrong = [
        f"{k}: file {tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__}, "
        f"model {tuple(expected[k].shape)}"
        for k, v in state_dict.items()
        if not isinstance(v, Tensor) or v.shape != expected[k].shape
    ]
    if wrong:
        raise ValueError(
            f"checkpoint {where} weights do not fit {name!r} with its config: "
            f"{'; '.join(wrong[:5])}{' ...' if len(wrong) > 5 else ''}"
        )


def load_checkpoint(
    path: str | os.PathLike[str],
    map_location: str | torch.device | None = None,
    *,
    max_parameters: int = MAX_PARAMETERS,
) -> Checkpoint:
    """Load a checkpoint written by :func:`save_checkpoint` and rebuild its model.

    The file is read with ``torch.load(weights_only=True)``: a file carrying any other pickled
    object is refused before that object is built, so nothing in it runs. The model class and
    config class come from the registry entry named in the file, the config is validated by
    ``config_class.from_dict`` and the weights are loaded strictly. Building the model does not
    advance the global random number generator.

    Before anything is allocated, the config's parameter count (``config.parameter_count()``
    for the built-in models) must be at most ``max_parameters`` and at most the number of
    values the file holds, and the model built on the ``meta`` device must have exactly the
    file's tensor names and shapes; so a crafted file fails fast with ``ValueError``.

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint file.
    map_location : str or torch.device, optional
        Where to put the loaded tensors (as in :func:`torch.load`); the rebuilt model is moved
        there too. Default: the devices the tensors were saved from.
    max_parameters : int, default :data:`MAX_PARAMETERS` (10**9)
        Refuse a config describing more parameters than this. Model constructors refuse
        configs above ``cellvision.models.MAX_PARAMETERS`` in any case.

    Returns
    -------
    Checkpoint
        The model, its name and config, and the optional epoch, optimizer state and extra data.

    Raises
    ------
    UnsafeCheckpointError
        If the file holds pickled objects other than tensors and plain containers.
    ValueError
        If the file is not a cellvision checkpoint, is newer than this release, lacks a
        required key, names a model that is not registered (import the module that registers
        it first), holds an invalid config or one above ``max_parameters``, holds an
        ``epoch`` that is not an int, its weights do not match the model (missing, unexpected
        or mis-shaped entries are listed), or ``map_location`` is not an available device
        (``"cuda"`` without a GPU, ``"meta"``, ``"tpu"``).
    FileNotFoundError
        If ``path`` does not exist.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = pathlib.Path(tmp) / "weights.pt"
    ...     torch.save({"weight": torch.zeros(2)}, path)
    ...     load_checkpoint(path)
    Traceback (most recent call last):
        ...
    ValueError: ...weights.pt' is not a cellvision checkpoint: expected a dict with ...
    """
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"path must be an existing checkpoint file, got {str(source)!r}")
    if map_location is not None:
        map_location = check_device("map_location", map_location)
    max_parameters = check_positive_int("max_parameters", max_parameters)
    payload = _validate_payload(_read(source, map_location), source)
    where = repr(str(source))
    name: str = payload["model_name"]
    try:
        entry = get_model_entry(name)
    except ValueError as exc:
        raise ValueError(
            f"checkpoint {str(source)!r} names model {name!r}, which is not registered; import "
            f"the module that registers it before loading ({exc})"
        ) from exc
    try:
        config = entry.config_class.from_dict(payload["config"])
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"checkpoint {str(source)!r} holds an invalid {entry.config_class.__name__}: {exc}"
        ) from exc

    state_dict = payload["state_dict"]
    count_parameters = getattr(config, "parameter_count", None)
    if callable(count_parameters):
        count = int(count_parameters())
        if count > max_parameters:
            raise ValueError(
                f"checkpoint {where} config must describe at most max_parameters="
                f"{max_parameters:,} parameters, got {count:,} for {name!r}: {config!r}"
            )
        held = _state_values(state_dict)
        if count > held:
            raise ValueError(
                f"checkpoint {where} weights do not fit {name!r} with its config: the config "
                f"needs {count:,} parameters but the file holds only {held:,} values"
            )
    skeleton: nn.Module | None
    try:
        with torch.device("meta"):
            skeleton = entry.model_class(config)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"checkpoint {where} holds a config {name!r} cannot use: {exc}") from exc
    except Exception:  # a user model that cannot be built on meta (it reads tensor data)
        skeleton = None  # the strict load_state_dict below still compares every tensor
    if skeleton is not None:
        _check_fits(skeleton, state_dict, where, name)
        del skeleton

    # Model construction draws random initial weights that are overwritten immediately; keep
    # the caller's random stream untouched.
    with torch.random.fork_rng(devices=[]):
        model = entry.model_class(config)
    try:
        result = model.load_state_dict(state_dict, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise ValueError(
            f"checkpoint {str(source)!r} weights do not fit {name!r} with its config: {exc}"
        ) from exc
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"checkpoint {str(source)!r} weights do not fit {name!r}: missing keys "
            f"{list(result.missing_keys)!r}, unexpected keys {list(result.unexpected_keys)!r}"
        )
    if isinstance(map_location, (str, torch.device)):
        model.to(map_location)

    epoch = payload.get("epoch")
    if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int)):
        raise ValueError(f"checkpoint {where} epoch must be an int or None, got {epoch!r}")
    optimizer_state = payload.get("optimizer_state_dict")
    if optimizer_state is not None and not isinstance(optimizer_state, dict):
        raise ValueError(
            f"checkpoint {where} optimizer_state_dict must be a dict or None, got "
            f"{type(optimizer_state).__name__}"
        )
    return Checkpoint(
        model=model,
        model_name=name,
        config=config,
        epoch=epoch,
        optimizer_state_dict=optimizer_state,
        extra=payload.get("extra"),
        format_version=payload["format_version"],
        metadata={
            key: payload.get(key)
            for key in ("cellvision_version", "torch_version")
            if key in payload
        },
    )
