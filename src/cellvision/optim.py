"""Optimizer helpers: weight-decay parameter groups, a warm-up + cosine schedule, weight EMA.

* :func:`param_groups` splits a model's parameters into a decayed and an undecayed group for
  :class:`torch.optim.AdamW`: biases, normalisation weights, position embeddings and class
  tokens are not decayed (decaying them pulls LayerNorm gains and embeddings towards zero
  without regularising anything useful).
* :func:`warmup_cosine` returns a :class:`torch.optim.lr_scheduler.LambdaLR` that rises linearly
  to the peak learning rate and then decays it along a half cosine to zero, stepped once per
  batch; :func:`warmup_cosine_factor` is the factor itself.
* :class:`WeightEMA` keeps an exponential moving average of a model's weights (and BatchNorm
  statistics), updated after every optimizer step, to predict with instead of the last weights.

References
----------
- Loshchilov, I. and Hutter, F. Decoupled weight decay regularization. ICLR (2019).
- Loshchilov, I. and Hutter, F. SGDR: stochastic gradient descent with warm restarts.
  ICLR (2017).
- Goyal, P. et al. Accurate, large minibatch SGD: training ImageNet in 1 hour.
  arXiv:1706.02677 (2017) (linear warm-up).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

from cellvision.config import check_positive_int

__all__ = [
    "NO_DECAY_NAMES",
    "WeightEMA",
    "param_groups",
    "warmup_cosine",
    "warmup_cosine_factor",
]

#: Parameter-name fragments (last component) that are never decayed, besides 1-D tensors.
NO_DECAY_NAMES: tuple[str, ...] = ("pos_embed", "cls_token", "position_embedding", "class_token")

_NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)


def _check_weight_decay(weight_decay: object) -> float:
    if isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float)):
        raise TypeError(f"weight_decay must be a number >= 0, got {weight_decay!r}")
    value = float(weight_decay)
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
    return value


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Split the trainable parameters of ``model`` into decayed and undecayed groups.

    A parameter is exempt from weight decay when it is a bias, belongs to a normalisation
    layer (batch/layer/group/RMS norm), is one-dimensional (gains and offsets of custom norm
    layers), or its name ends in one of :data:`NO_DECAY_NAMES` (position embeddings and the
    class token). Every other parameter (convolution kernels, linear and embedding weights) is
    decayed. Frozen parameters (``requires_grad=False``) are left out.

    Parameters
    ----------
    model : torch.nn.Module
        The model (a DDP or compiled wrapper works too: names are taken from the wrapper).
    weight_decay : float
        Decay of the decayed group, ``>= 0``.

    Returns
    -------
    list of dict
        ``[{"params": decayed, "weight_decay": weight_decay, "names": [...]},
        {"params": undecayed, "weight_decay": 0.0, "names": [...]}]``, ready for
        ``torch.optim.AdamW(groups, lr=...)``; an empty group is dropped. The ``names`` entry
        lists the parameter names of the group (optimizers keep it as an unused key).

    Raises
    ------
    TypeError
        If ``model`` is not a module or ``weight_decay`` is not a number.
    ValueError
        If ``weight_decay`` is negative or not finite.

    References
    ----------
    Loshchilov, I. and Hutter, F. Decoupled weight decay regularization. ICLR (2019).

    Examples
    --------
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2))
    >>> decay, no_decay = param_groups(model, 0.05)
    >>> decay["names"], decay["weight_decay"]
    (['0.weight', '2.weight'], 0.05)
    >>> no_decay["names"], no_decay["weight_decay"]
    (['0.bias', '1.weight', '1.bias', '2.bias'], 0.0)
    >>> optimizer = torch.optim.AdamW(param_groups(model, 0.05), lr=1e-3)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    decay_value = _check_weight_decay(weight_decay)
    norm_params: set[int] = set()
    for module in model.modules():
        if isinstance(module, _NORM_TYPES):
            norm_params.update(id(p) for p in module.parameters(recurse=False))
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    decay_names: list[str] = []
    no_decay_names: list[str] = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        leaf = name.rsplit(".", 1)[-1]
        exempt = (
            leaf == "bias"
            or id(param) in norm_params
            or param.ndim <= 1
            or any(leaf.endswith(fragment) for fragment in NO_DECAY_NAMES)
        )
        (no_decay if exempt else decay).append(param)
        (no_decay_names if exempt else decay_names).append(name)
    groups: list[dict[str, Any]] = []
    if decay:
        groups.append({"params": decay, "weight_decay": decay_value, "names": decay_names})
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0, "names": no_decay_names})
    return groups


def warmup_cosine_factor(step: int, total_steps: int, warmup_steps: int) -> float:
    """The learning-rate factor of :func:`warmup_cosine` at ``step`` (0-based).

    During the first ``warmup_steps`` steps the factor rises linearly,
    ``(step + 1) / warmup_steps``, reaching 1 at the last warm-up step; afterwards it follows
    ``0.5 * (1 + cos(pi * progress))`` with ``progress`` going from 0 to 1 over the remaining
    ``total_steps - warmup_steps`` steps (clipped at 1, so stepping past the end keeps the
    factor at 0).

    Parameters
    ----------
    step : int
        Scheduler step, counted from 0.
    total_steps : int
        Steps of the whole schedule (``>= 1``).
    warmup_steps : int
        Warm-up steps (``>= 1``).

    Returns
    -------
    float
        Factor in ``[0, 1]``.

    Examples
    --------
    >>> [round(warmup_cosine_factor(s, 6, 2), 3) for s in range(6)]
    [0.5, 1.0, 1.0, 0.854, 0.5, 0.146]
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def warmup_cosine(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_fraction: float = 0.2
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up to the peak learning rate, then cosine decay to zero.

    The schedule is meant to be stepped once per batch (pass it as ``scheduler=`` to
    :func:`cellvision.engine.fit`). The warm-up lasts ``max(1, round(warmup_fraction *
    total_steps))`` steps; the factor is :func:`warmup_cosine_factor`. Written as a
    :class:`~torch.optim.lr_scheduler.LambdaLR`, so it also works for a handful of steps and
    its state dictionary resumes with the optimizer.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        The optimizer whose groups' ``lr`` is the peak rate.
    total_steps : int
        Scheduler steps of the whole run (epochs x batches per epoch), ``>= 1``.
    warmup_fraction : float, default 0.2
        Fraction of the steps spent warming up, in ``[0, 1]``.

    Returns
    -------
    torch.optim.lr_scheduler.LambdaLR
        The scheduler.

    Raises
    ------
    TypeError, ValueError
        If ``total_steps`` is not a positive int or ``warmup_fraction`` is not in ``[0, 1]``.

    References
    ----------
    Loshchilov, I. and Hutter, F. SGDR: stochastic gradient descent with warm restarts.
    ICLR (2017); Goyal, P. et al. Accurate, large minibatch SGD. arXiv:1706.02677 (2017).

    Examples
    --------
    >>> param = nn.Parameter(torch.zeros(1))
    >>> optimizer = torch.optim.SGD([param], lr=1.0)
    >>> scheduler = warmup_cosine(optimizer, total_steps=5, warmup_fraction=0.4)
    >>> rates = []
    >>> for _ in range(5):
    ...     rates.append(round(optimizer.param_groups[0]["lr"], 3))
    ...     optimizer.step()
    ...     scheduler.step()
    >>> rates
    [0.5, 1.0, 1.0, 0.75, 0.25]
    """
    check_positive_int("total_steps", total_steps)
    if isinstance(warmup_fraction, bool) or not isinstance(warmup_fraction, (int, float)):
        raise TypeError(f"warmup_fraction must be a number in [0, 1], got {warmup_fraction!r}")
    if not 0.0 <= float(warmup_fraction) <= 1.0:
        raise ValueError(f"warmup_fraction must be in [0, 1], got {warmup_fraction!r}")
    total = int(total_steps)
    warmup = max(1, round(float(warmup_fraction) * total))

    def factor(step: int) -> float:
        return warmup_cosine_factor(step, total, warmup)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class WeightEMA:
    """An exponential moving average of a model's weights, updated after optimizer steps.

    ``module`` is a frozen copy of the model in eval mode. Each :meth:`update` moves every
    floating-point parameter and buffer of the copy towards the model's,
    ``ema <- ema + (1 - d) * (model - ema)``, with ``d = min(decay, (1 + n) / (10 + n))`` at the
    ``n``-th update (counted from 0): the warm-up keeps the randomly initialised first weights
    from lingering in the average of a short run. Integer buffers (BatchNorm's batch counter)
    are copied. Averaging the buffers too keeps BatchNorm's running statistics consistent with
    the averaged weights. :meth:`attach` calls :meth:`update` after every ``optimizer.step()``.

    Parameters
    ----------
    model : torch.nn.Module
        The model being trained (not wrapped in DDP: pass ``ddp.module``).
    decay : float
        Per-update decay in ``[0, 1)``: the average spans about ``1 / (1 - decay)`` steps.

    Raises
    ------
    TypeError, ValueError
        If ``model`` is not a module or ``decay`` is not a number in ``[0, 1)``.

    References
    ----------
    Polyak, B. T. and Juditsky, A. B. Acceleration of stochastic approximation by averaging.
    SIAM J. Control Optim. 30(4) (1992); Izmailov, P. et al. Averaging weights leads to wider
    optima and better generalization. UAI (2018).

    Examples
    --------
    >>> model = nn.Linear(1, 1, bias=False)
    >>> _ = nn.init.zeros_(model.weight)
    >>> ema = WeightEMA(model, decay=0.5)
    >>> optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    >>> handle = ema.attach(optimizer, model)
    >>> model.weight.grad = torch.full((1, 1), -1.0)
    >>> optimizer.step()                  # the weight is now 1; the first decay is 1/10
    >>> round(ema.module.weight.item(), 3)
    0.9
    >>> ema.updates
    1
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if isinstance(decay, bool) or not isinstance(decay, (int, float)):
            raise TypeError(f"decay must be a number in [0, 1), got {decay!r}")
        if not 0.0 <= float(decay) < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay!r}")
        self.decay = float(decay)
        self.updates = 0
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    def current_decay(self) -> float:
        """The decay the next :meth:`update` uses (the warm-up of the class docstring).

        Returns
        -------
        float
            ``min(decay, (1 + updates) / (10 + updates))``.

        Examples
        --------
        >>> WeightEMA(nn.Linear(1, 1), decay=0.99).current_decay()
        0.1
        """
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average one step towards ``model``'s current weights and buffers.

        Parameters
        ----------
        model : torch.nn.Module
            The trained model, with the same parameter and buffer names as :attr:`module`.

        Raises
        ------
        ValueError
            If ``model``'s parameters or buffers do not match the average's.

        Examples
        --------
        >>> model = nn.Linear(1, 1)
        >>> ema = WeightEMA(model, decay=0.9)
        >>> ema.update(model)
        >>> torch.equal(ema.module.weight, model.weight)
        True
        """
        weight = 1.0 - self.current_decay()
        own = dict(self.module.state_dict(keep_vars=True))
        theirs = dict(model.state_dict(keep_vars=True))
        if own.keys() != theirs.keys():
            missing = sorted(own.keys() ^ theirs.keys())
            raise ValueError(f"model does not match the averaged model: keys {missing[:4]} differ")
        floats_own, floats_theirs = [], []
        for name, mine in own.items():
            other = theirs[name].detach()
            if mine.shape != other.shape:
                raise ValueError(
                    f"model does not match the averaged model: {name} has shape "
                    f"{tuple(other.shape)}, expected {tuple(mine.shape)}"
                )
            if mine.is_floating_point():
                floats_own.append(mine.data)
                floats_theirs.append(other.to(mine.dtype))
            else:
                mine.data.copy_(other)
        if floats_own:
            torch._foreach_lerp_(floats_own, floats_theirs, weight)
        self.updates += 1

    def attach(self, optimizer: torch.optim.Optimizer, model: nn.Module) -> Any:
        """Call :meth:`update` with ``model`` after every ``optimizer.step()``.

        Parameters
        ----------
        optimizer : torch.optim.Optimizer
            The optimizer that trains ``model``.
        model : torch.nn.Module
            The trained model.

        Returns
        -------
        torch.utils.hooks.RemovableHandle
            ``handle.remove()`` stops the updates.

        Examples
        --------
        >>> model = nn.Linear(2, 1)
        >>> ema = WeightEMA(model, decay=0.9)
        >>> handle = ema.attach(torch.optim.SGD(model.parameters(), lr=0.1), model)
        >>> handle.remove()
        """
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}"
            )

        def hook(_optimizer: Any, _args: Any, _kwargs: Any) -> None:
            self.update(model)

        return optimizer.register_step_post_hook(hook)
