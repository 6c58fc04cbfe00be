"""Class-rebalancing sampler: exact for any data-set size, sharded like ``DistributedSampler``.

A sample of class :math:`c` gets the weight :math:`w_c = (1 / n_c)^{\\alpha}`, where :math:`n_c`
is the number of samples of that class (or an explicit per-class weight). A draw therefore picks
class :math:`c` with probability

.. math::

    p_c = \\frac{n_c w_c}{\\sum_k n_k w_k},

and :math:`\\alpha = 0` keeps the natural class mix while :math:`\\alpha = 1` makes every class
equally likely. :class:`ClassBalancedSampler` draws the class first and then a sample uniformly
inside that class, which is the same distribution as per-sample weighted sampling but needs no
cumulative sum over all samples, so it has no 2**24 limit and no loss of precision for large
data sets (unlike :class:`torch.utils.data.WeightedRandomSampler`). Each epoch's draw is a pure
function of ``(seed, epoch)``, so every rank of a distributed job computes the same global draw
and keeps a disjoint shard of it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler

from cellvision.config import (
    as_builtin_number,
    check_non_negative_int,
    check_positive_int,
    check_seed,
)

__all__ = ["ClassBalancedSampler", "class_weights", "expected_class_distribution"]

# Draws with replacement are generated in blocks of this many indices: temporaries stay small
# (about 25% less CPU than 4M-index blocks, and bounded for huge epochs) while blocks are large
# enough that per-op thread synchronisation stays negligible (smaller blocks were twice as slow
# with 2 threads on a loaded machine). The block size fixes the order of the random stream, so
# changing it changes every draw longer than one block.
_BLOCK = 1 << 20
# Within-class positions are ``r mod n_c`` with ``r`` uniform on [0, 2**62): the modulo bias is
# at most n_c / 2**62, far below anything measurable.
_RANDOM_INT_HIGH = 1 << 62
_MASK64 = (1 << 64) - 1
# Label dtypes used as they are (no int64 copy); others are converted to int64.
_NATIVE_LABEL_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
_NATIVE_NUMPY_DTYPES = tuple(np.dtype(t) for t in (np.uint8, np.int8, np.int16, np.int32, np.int64))
# Up to this many classes the class-sorted permutation is built by one pass per class (O(N C),
# little memory); beyond it a stable argsort (O(N log N)) is faster.
_MAX_CLASSES_FOR_PASSES = 32
# An epoch's draw is materialised as one index tensor (4 or 8 bytes per index): beyond this
# many indices (16-32 GiB) the allocation itself fails, so it is refused up front.
_MAX_NUM_SAMPLES = 1 << 32


def _describe(value: object) -> str:
    """Short ``repr`` for error messages, without printing millions of labels."""
    if isinstance(value, torch.Tensor):
        return f"tensor(shape={tuple(value.shape)}, dtype={value.dtype})"
    if isinstance(value, np.ndarray):
        return f"ndarray(shape={value.shape}, dtype={value.dtype})"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _as_label_tensor(labels: object) -> torch.Tensor:
    """Validate labels (tensor, ndarray, sequence of ints, or object with ``targets``).

    Returns a 1-D CPU tensor of a signed (or uint8) integer dtype. Narrow dtypes are kept: a
    ``uint8`` label tensor of 5e7 samples stays 50 MB instead of becoming 400 MB of int64.
    """
    name = "labels"
    if not isinstance(labels, (torch.Tensor, np.ndarray, Sequence)) and hasattr(labels, "targets"):
        labels = labels.targets
        name = "labels.targets"
    if isinstance(labels, torch.Tensor):
        if labels.dtype == torch.bool or labels.dtype.is_floating_point or labels.dtype.is_complex:
            raise TypeError(
                f"{name} must have an integer dtype, got {_describe(labels)}; "
                "convert class labels with .long()"
            )
        tensor = labels.detach().to(device="cpu")
        if tensor.dtype not in _NATIVE_LABEL_DTYPES:
            tensor = tensor.to(torch.int64)
    elif isinstance(labels, np.ndarray):
        if labels.dtype.kind not in "iu":
            raise TypeError(f"{name} must have an integer dtype, got {_describe(labels)}")
        if labels.dtype not in _NATIVE_NUMPY_DTYPES:
            labels = labels.astype(np.int64)
        tensor = torch.from_numpy(np.ascontiguousarray(labels))
    elif isinstance(labels, Sequence) and not isinstance(labels, (str, bytes)):
        if len(labels) == 0:
            raise ValueError(f"{name} must be non-empty, got {_describe(labels)}")
        array = np.asarray(labels)
        if array.dtype.kind not in "iu":
            raise TypeError(f"{name} must be a sequence of integers, got {_describe(labels)}")
        tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.int64))
    else:
        raise TypeError(
            f"{name} must be a tensor, ndarray, sequence of ints or an object with a `targets` "
            f"attribute, got {_describe(labels)}"
        )
    if tensor.ndim != 1:
        raise ValueError(
            f"{name} must be 1-D (one class index per sample), got {_describe(labels)}"
        )
    if tensor.numel() == 0:
        raise ValueError(f"{name} must be non-empty, got {_describe(labels)}")
    smallest = int(tensor.min())
    if smallest < 0:
        raise ValueError(f"{name} must be non-negative class indices, got a label {smallest!r}")
    largest = int(tensor.max())
    if largest >= 2 * tensor.numel() + 1024:
        # Per-class tables have max(labels) + 1 entries: sample ids or hashes passed as labels
        # would allocate gigabytes before anything else failed.
        raise ValueError(
            f"{name} must be class indices 0..C-1 with C at most about the number of samples "
            f"({tensor.numel()}), got a label {largest!r}; map arbitrary ids to indices with "
            "torch.unique(labels, return_inverse=True)[1]"
        )
    return tensor


def _class_sorted_positions(labels: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Sample positions grouped by class, ascending within a class (a stable argsort).

    Class ``c`` occupies ``[offsets[c], offsets[c] + counts[c])`` of the result. Positions are
    int32 when they fit (half the memory of int64).
    """
    num_labels = labels.numel()
    index_dtype = torch.int32 if num_labels <= torch.iinfo(torch.int32).max else torch.int64
    if counts.numel() > _MAX_CLASSES_FOR_PASSES:
        return torch.argsort(labels, stable=True).to(index_dtype)
    order = torch.empty(num_labels, dtype=index_dtype)
    start = 0
    for cls, count in enumerate(counts.tolist()):
        if count:
            order[start : start + count] = torch.nonzero(labels == cls).squeeze(1)
            start += count
    return order


def _check_alpha(alpha: object) -> float:
    number = as_builtin_number(alpha)
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        raise TypeError(f"alpha must be a finite number >= 0, got {alpha!r}")
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}")
    return float(number)


def _weights_from_counts(counts: torch.Tensor, alpha: float) -> torch.Tensor:
    """``(n_min / n_c) ** alpha`` per class in float64; classes with no samples get weight 0.

    This is ``(1 / n_c) ** alpha`` scaled so that the smallest present class has weight 1:
    only the ratios matter, and the scaling keeps a large ``alpha`` from underflowing every
    weight to 0 (``1000 ** -400`` is 0 in float64, but relative to the smallest class the
    weights stay correct: 1 for it, a negligible one for a class 1000 times larger).
    """
    present = counts > 0
    weights = torch.zeros(counts.shape, dtype=torch.float64)
    sizes = counts[present].to(torch.float64)
    weights[present] = (sizes.min() / sizes).pow(alpha)
    return weights


def _check_class_weights(class_weights: object, num_labels_classes: int) -> torch.Tensor:
    """Validate explicit per-class weights and return them as a float64 tensor."""
    if isinstance(class_weights, torch.Tensor):
        weights = class_weights.detach().to(device="cpu", dtype=torch.float64)
    elif isinstance(class_weights, (np.ndarray, Sequence)) and not isinstance(
        class_weights, (str, bytes)
    ):
        try:
            weights = torch.as_tensor(np.asarray(class_weights, dtype=np.float64))
        except (TypeError, ValueError):
            raise TypeError(
                f"class_weights must be a 1-D sequence of real numbers, got "
                f"{_describe(class_weights)}"
            ) from None
    else:
        raise TypeError(
            f"class_weights must be a 1-D tensor, ndarray or sequence of real numbers, got "
            f"{_describe(class_weights)}"
        )
    if weights.ndim != 1 or weights.numel() < num_labels_classes:
        raise ValueError(
            f"class_weights must be 1-D with one weight per class (at least "
            f"{num_labels_classes}, the largest label + 1), got {_describe(class_weights)}"
        )
    if not bool(torch.isfinite(weights).all()) or bool((weights < 0).any()):
        raise ValueError(
            f"class_weights must be finite and non-negative, got {_describe(class_weights)}"
        )
    return weights


def _class_setup(
    labels: object, alpha: object, class_weights: object | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Shared validation: returns (label tensor, per-class counts, per-class weights)."""
    alpha_value = _check_alpha(alpha)
    tensor = _as_label_tensor(labels)
    n_classes = int(tensor.max()) + 1
    if class_weights is None:
        counts = torch.bincount(tensor, minlength=n_classes)
        weights = _weights_from_counts(counts, alpha_value)
    else:
        weights = _check_class_weights(class_weights, n_classes)
        counts = torch.bincount(tensor, minlength=weights.numel())
    if not bool((counts.to(torch.float64) * weights > 0).any()):
        raise ValueError(
            "class_weights must give a positive weight to at least one class present in labels, "
            f"got {weights.tolist()!r} for class counts {counts.tolist()!r}"
        )
    return tensor, counts, weights


def _class_mass(counts: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``n_c w_c`` with the weights scaled to a largest weight of 1 (only ratios matter).

    The scaling keeps huge weights (1e308) from overflowing the sum and tiny, subnormal ones
    (1e-309) from overflowing the exponential keys of sampling without replacement.
    """
    return counts.to(torch.float64) * (weights / weights.max())


def class_weights(labels: object, alpha: float = 0.9) -> torch.Tensor:
    """Per-class sampling weights ``(1 / n_c) ** alpha``.

    Parameters
    ----------
    labels : Tensor, ndarray, sequence of int, or object with ``targets``
        One non-negative class index per sample, or a data set exposing them as ``targets``.
    alpha : float, default 0.9
        Rebalancing strength: 0 keeps the natural class mix, 1 makes every class equally likely.

    Returns
    -------
    Tensor
        float64 tensor of shape ``(max(labels) + 1,)``; classes without samples get weight 0.
        ``class_weights(labels, alpha)[labels]`` are the equivalent per-sample weights for
        :class:`torch.utils.data.WeightedRandomSampler`. The weights are scaled so that the
        smallest present class has weight 1 (only their ratios matter; the scaling keeps a
        large ``alpha`` from underflowing them to 0).

    Raises
    ------
    TypeError
        If ``labels`` are not integers or ``alpha`` is not a number.
    ValueError
        If ``labels`` are empty, not 1-D or negative, or ``alpha`` is negative or not finite.

    Examples
    --------
    >>> class_weights([0, 0, 0, 0, 1], alpha=1.0)
    tensor([0.2500, 1.0000], dtype=torch.float64)
    >>> class_weights([0, 0, 0, 0, 2], alpha=0.5)
    tensor([0.5000, 0.0000, 1.0000], dtype=torch.float64)
    """
    _, _, weights = _class_setup(labels, alpha, None)
    return weights


def expected_class_distribution(
    labels: object, alpha: float = 0.9, *, class_weights: object | None = None
) -> torch.Tensor:
    """Probability that one draw of :class:`ClassBalancedSampler` comes from each class.

    This is the class mix a training batch will have on average: check it before training.

    Parameters
    ----------
    labels : Tensor, ndarray, sequence of int, or object with ``targets``
        One non-negative class index per sample, or a data set exposing them as ``targets``.
    alpha : float, default 0.9
        Rebalancing strength (ignored when ``class_weights`` is given).
    class_weights : Tensor, ndarray or sequence of float, optional
        Explicit non-negative per-class weights, one per class.

    Returns
    -------
    Tensor
        float64 tensor ``p`` of shape ``(n_classes,)`` with ``p[c] = n_c w_c / sum_k n_k w_k``;
        it sums to 1.

    Raises
    ------
    TypeError
        If ``labels`` or ``class_weights`` have the wrong type, or ``alpha`` is not a number.
    ValueError
        If ``labels`` are empty, not 1-D or negative, ``alpha`` is negative or not finite, or the
        weights are negative, non-finite or zero for every present class.

    Examples
    --------
    >>> labels = [0] * 90 + [1] * 9 + [2]
    >>> expected_class_distribution(labels, alpha=0.0)
    tensor([0.9000, 0.0900, 0.0100], dtype=torch.float64)
    >>> expected_class_distribution(labels, alpha=1.0)
    tensor([0.3333, 0.3333, 0.3333], dtype=torch.float64)
    >>> expected_class_distribution(labels, class_weights=[0.0, 1.0, 1.0])
    tensor([0.0000, 0.9000, 0.1000], dtype=torch.float64)
    """
    _, counts, weights = _class_setup(labels, alpha, class_weights)
    mass = _class_mass(counts, weights)
    return mass / mass.sum()


def _mix_seed(seed: int, epoch: int) -> int:
    """Combine (seed, epoch) into one 63-bit generator seed (splitmix64 finaliser).

    Unlike ``seed + epoch`` this keeps (seed=0, epoch=1) and (seed=1, epoch=0) apart.
    """

    def splitmix64(x: int) -> int:
        x = (x + 0x9E3779B97F4A7C15) & _MASK64
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
        return x ^ (x >> 31)

    return splitmix64(splitmix64(seed & _MASK64) ^ (epoch & _MASK64)) >> 1


class ClassBalancedSampler(Sampler[int]):
    """Class-rebalancing sampler: exact for any data-set size, deterministic, distributed.

    Each draw picks class :math:`c` with probability :math:`p_c \\propto n_c w_c` and then a
    sample uniformly inside class :math:`c`, where :math:`n_c` is the class size and
    :math:`w_c = (1 / n_c)^{\\alpha}` (or ``class_weights[c]``). This is exactly per-sample weighted
    sampling with weight :math:`w_c` for every sample of class :math:`c`, but it works on ``C``
    class probabilities instead of a cumulative sum over ``N`` samples: there is no 2**24 limit,
    memory is O(N) (one class-sorted index permutation, built once) and an epoch costs
    O(num_samples) with replacement.

    The draw of an epoch depends only on ``(seed, epoch)``: every rank computes the same global
    draw of ``num_samples`` indices and keeps positions ``rank, rank + num_replicas, ...`` of it,
    as :class:`torch.utils.data.DistributedSampler` does. When ``num_samples`` is not divisible
    by ``num_replicas`` the global draw is padded by repeating its first indices
    (``drop_last=False``) or its tail is dropped (``drop_last=True``) so that every rank gets the
    same number of indices. The global draw itself does not depend on ``num_replicas``.

    Parameters
    ----------
    labels : Tensor, ndarray, sequence of int, or object with ``targets``
        One non-negative class index per sample (1-D), or a data set exposing them as
        ``targets``. Labels are read once, at construction.
    alpha : float, default 0.9
        Rebalancing strength: 0 draws samples uniformly (natural class mix), 1 makes every class
        equally likely. Ignored when ``class_weights`` is given.
    class_weights : Tensor, ndarray or sequence of float, optional
        Explicit non-negative weight per class (at least ``max(labels) + 1`` entries); every
        sample of class ``c`` then has weight ``class_weights[c]``. A zero weight excludes a class.
    num_samples : int, optional
        Number of indices drawn per epoch over all replicas (default: the number of samples),
        at most ``2**32``.
    replacement : bool, default True
        Draw with replacement. ``False`` draws without replacement (successive weighted sampling,
        by exponential keys), which needs ``num_samples`` at most the number of samples with a
        positive weight.
    seed : int, default 0
        Seed of the draw, in ``[0, 2**64)``; with the epoch it fully determines the indices.
    num_replicas : int, optional
        Number of distributed processes (default: the world size of the initialised default
        process group, else 1).
    rank : int, optional
        Rank of this process (default: its rank in the default process group, else 0).
    drop_last : bool, default False
        Drop the tail of the global draw instead of padding it to a multiple of ``num_replicas``.

    Attributes
    ----------
    num_samples : int
        Indices drawn per epoch before padding or dropping.
    total_size : int
        Length of the padded or dropped global draw; ``len(sampler) == total_size // num_replicas``.
    epoch : int
        Current epoch, set by :meth:`set_epoch` (0 initially).
    class_counts : Tensor
        Number of samples per class (int64).
    class_weights : Tensor
        Weight of each sample of a class (float64): ``(1 / n_c) ** alpha`` or the explicit
        ``class_weights``.
    class_probabilities : Tensor
        Probability that a draw comes from each class (float64), as
        :func:`expected_class_distribution` returns.

    Raises
    ------
    TypeError
        If an argument has the wrong type (for example float labels).
    ValueError
        If labels are empty, not 1-D or negative; ``alpha`` is negative or NaN; ``num_samples``
        is not positive; ``rank`` is not in ``[0, num_replicas)``; every class weight is zero; or
        ``replacement=False`` and ``num_samples`` exceeds the number of samples with a positive
        weight.

    References
    ----------
    P. S. Efraimidis and P. G. Spirakis, "Weighted random sampling with a reservoir",
    Information Processing Letters 97(5), 2006 (exponential keys, used for ``replacement=False``).

    Examples
    --------
    >>> labels = torch.tensor([0] * 8 + [1] * 2)
    >>> sampler = ClassBalancedSampler(labels, alpha=1.0, num_samples=6, seed=3)
    >>> len(sampler)
    6
    >>> sampler.class_probabilities
    tensor([0.5000, 0.5000], dtype=torch.float64)
    >>> indices = list(sampler)
    >>> indices == list(sampler)  # same seed and epoch, same draw
    True
    >>> all(0 <= i < 10 for i in indices)
    True

    Two replicas split one global draw into disjoint, interleaved shards:

    >>> shards = [
    ...     list(ClassBalancedSampler(labels, num_samples=6, seed=3, alpha=1.0,
    ...                               num_replicas=2, rank=r))
    ...     for r in range(2)
    ... ]
    >>> [i for pair in zip(*shards) for i in pair] == indices
    True
    """

    def __init__(
        self,
        labels: object,
        *,
        alpha: float = 0.9,
        class_weights: object | None = None,
        num_samples: int | None = None,
        replacement: bool = True,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        drop_last: bool = False,
    ) -> None:
        tensor, counts, weights = _class_setup(labels, alpha, class_weights)
        self.alpha = float(alpha)
        num_labels = tensor.numel()
        if num_samples is None:
            num_samples = num_labels
        num_samples = check_positive_int("num_samples", num_samples)
        if num_samples > _MAX_NUM_SAMPLES:
            raise ValueError(
                f"num_samples must be at most 2**32 (an epoch's draw is held in memory), got "
                f"{num_samples!r}"
            )
        seed = check_seed("seed", seed)
        if not isinstance(replacement, bool):
            raise TypeError(f"replacement must be a bool, got {replacement!r}")
        if not isinstance(drop_last, bool):
            raise TypeError(f"drop_last must be a bool, got {drop_last!r}")
        num_replicas, rank = _resolve_replicas(num_replicas, rank)

        positive = weights > 0
        available = int(counts[positive].sum())
        if not replacement and num_samples > available:
            raise ValueError(
                f"num_samples must be at most {available} (the number of samples with a positive "
                f"weight) when replacement=False, got {num_samples!r}; pass a smaller num_samples "
                "or use replacement=True"
            )
        if drop_last:
            total_size = (num_samples // num_replicas) * num_replicas
            if total_size == 0:
                raise ValueError(
                    f"num_samples must be >= num_replicas ({num_replicas}) when drop_last=True, "
                    f"got {num_samples!r}"
                )
        else:
            total_size = math.ceil(num_samples / num_replicas) * num_replicas

        self.num_samples = num_samples
        self.total_size = total_size
        self.replacement = replacement
        self.seed = seed
        self.epoch = 0
        self.num_replicas = num_replicas
        self.rank = rank
        self.drop_last = drop_last
        self.class_counts = counts
        self.class_weights = weights
        mass = _class_mass(counts, weights)
        self.class_probabilities = mass / mass.sum()

        # Positions sorted by class: class c occupies order[offsets[c] : offsets[c] + counts[c]].
        self._order = _class_sorted_positions(tensor, counts)
        self._offsets = torch.cumsum(counts, 0) - counts
        # The class CDF ends at exactly 1.0 from the last class with positive mass on, so a
        # uniform u in [0, 1) always lands on a class with positive probability.
        cdf = torch.cumsum(self.class_probabilities, 0)
        last = int(torch.nonzero(mass > 0)[-1])
        cdf[last:] = 1.0
        self._cdf = cdf
        # Draws never select a class of probability 0, so a zero count is never a divisor; the
        # clamp only keeps ``remainder`` well-defined on those unused entries.
        self._divisors = counts.clamp(min=1)
        # Sampling without replacement needs the weight of every class-sorted position.
        self._rates = (
            torch.empty(0, dtype=torch.float64)
            if replacement
            else torch.repeat_interleave(weights / weights.max(), counts)
        )

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch, which selects the draw (call it before each epoch on every rank).

        Parameters
        ----------
        epoch : int
            Non-negative epoch number.

        Raises
        ------
        TypeError
            If ``epoch`` is not an integer.
        ValueError
            If ``epoch`` is negative.

        Examples
        --------
        >>> sampler = ClassBalancedSampler([0, 0, 1, 1, 1, 2], num_samples=20)
        >>> first = list(sampler)
        >>> sampler.set_epoch(1)
        >>> list(sampler) != first
        True
        >>> sampler.set_epoch(0)
        >>> list(sampler) == first
        True
        """
        self.epoch = check_non_negative_int("epoch", epoch)

    def global_indices(self) -> torch.Tensor:
        """The padded (or dropped) global draw of the current epoch, identical on every rank.

        Returns
        -------
        Tensor
            int64 tensor of length :attr:`total_size`; rank ``r`` iterates
            ``global_indices()[r::num_replicas]``.

        Examples
        --------
        >>> sampler = ClassBalancedSampler([0, 1, 1], num_samples=5, num_replicas=2, rank=1)
        >>> draw = sampler.global_indices()
        >>> draw.shape, sampler.total_size
        (torch.Size([6]), 6)
        >>> bool(draw[5] == draw[0])  # padded by repeating the start of the draw
        True
        >>> sampler.local_indices().tolist() == draw[1::2].tolist() == list(sampler)
        True
        """
        return self._global_draw().to(torch.int64)

    def local_indices(self) -> torch.Tensor:
        """This rank's shard of the current epoch's draw, as a tensor (what iteration yields).

        Returns
        -------
        Tensor
            int64 tensor of length ``len(self)``.

        Examples
        --------
        >>> sampler = ClassBalancedSampler(torch.tensor([0, 0, 0, 1]), num_samples=8)
        >>> sampler.local_indices().shape
        torch.Size([8])
        """
        return self._local_draw().to(torch.int64)

    def __iter__(self) -> Iterator[int]:
        """Iterate over this rank's indices for the current epoch (Python ints)."""
        shard = self._local_draw()
        # Iterating a memoryview yields Python ints straight from the buffer: much faster than
        # ``tensor.tolist()`` and without materialising a list of int objects.
        return iter(shard.numpy().data)

    def __len__(self) -> int:
        """Number of indices this rank yields per epoch."""
        return self.total_size // self.num_replicas

    def __repr__(self) -> str:
        """Short description with the sampling settings."""
        return (
            f"{type(self).__name__}(n_classes={self.class_counts.numel()}, "
            f"num_samples={self.num_samples}, replacement={self.replacement}, seed={self.seed}, "
            f"epoch={self.epoch}, num_replicas={self.num_replicas}, rank={self.rank}, "
            f"drop_last={self.drop_last})"
        )

    def _generator(self) -> torch.Generator:
        generator = torch.Generator()
        generator.manual_seed(_mix_seed(self.seed, self.epoch))
        return generator

    def _draw(self) -> torch.Tensor:
        """``num_samples`` indices (dtype of the class-sorted permutation), before padding."""
        generator = self._generator()
        if self.replacement:
            return self._draw_with_replacement(generator)
        return self._draw_without_replacement(generator)

    def _draw_with_replacement(self, generator: torch.Generator) -> torch.Tensor:
        out = torch.empty(self.num_samples, dtype=self._order.dtype)
        for start in range(0, self.num_samples, _BLOCK):
            size = min(_BLOCK, self.num_samples - start)
            uniform = torch.rand(size, dtype=torch.float64, generator=generator)
            cls = torch.searchsorted(self._cdf, uniform, right=True, out_int32=True)
            del uniform
            position = torch.empty(size, dtype=torch.int64).random_(
                0, _RANDOM_INT_HIGH, generator=generator
            )
            position.remainder_(self._divisors.index_select(0, cls))
            position.add_(self._offsets.index_select(0, cls))
            del cls
            torch.index_select(self._order, 0, position, out=out[start : start + size])
        return out

    def _draw_without_replacement(self, generator: torch.Generator) -> torch.Tensor:
        # Exponential keys E_i / w_i: the order of increasing keys is a draw of successive
        # weighted sampling without replacement (Efraimidis-Spirakis); zero weights never win.
        rates = self._rates
        # Keys compared as log(E) - log(w): the same order as E / w, but a subnormal weight
        # cannot overflow its key to inf and tie with the excluded (zero-weight) samples.
        keys = torch.empty(rates.numel(), dtype=torch.float64).exponential_(generator=generator)
        keys.log_().sub_(rates.log()).masked_fill_(rates == 0, math.inf)
        if 8 * self.num_samples < keys.numel():
            chosen = torch.topk(keys, self.num_samples, largest=False, sorted=True).indices
        else:
            chosen = torch.argsort(keys)[: self.num_samples]
        return self._order.index_select(0, chosen)

    def _global_draw(self) -> torch.Tensor:
        draw = self._draw()
        if self.total_size < draw.numel():
            return draw[: self.total_size]
        if self.total_size > draw.numel():
            repeats = math.ceil(self.total_size / draw.numel())
            return draw.repeat(repeats)[: self.total_size]
        return draw

    def _local_draw(self) -> torch.Tensor:
        draw = self._global_draw()
        if self.num_replicas == 1:
            return draw
        return draw[self.rank :: self.num_replicas].contiguous()


def _resolve_replicas(num_replicas: object, rank: object) -> tuple[int, int]:
    """Fill ``num_replicas``/``rank`` from the default process group, then validate them."""
    initialised = torch.distributed.is_available() and torch.distributed.is_initialized()
    if num_replicas is None:
        num_replicas = torch.distributed.get_world_size() if initialised else 1
    if rank is None:
        rank = torch.distributed.get_rank() if initialised else 0
    num_replicas = check_positive_int("num_replicas", num_replicas)
    rank = check_non_negative_int("rank", rank)
    if rank >= num_replicas:
        raise ValueError(f"rank must be in [0, num_replicas={num_replicas}), got {rank!r}")
    return num_replicas, rank
