"""The cell-cycle study: classify imaging-flow-cytometry cells into five phases.

The recipe, top to bottom:

1. **data**: the package's embedded sample of real Jurkat cells (:func:`load_data`, label-free
   channels Ch3 + Ch6), a labelled folder read by :func:`cellvision.data.load_cells`
   (per-cell files or the release's montages; G1/S/G2 merged into Interphase, or kept apart
   with ``release_labels=True`` for ``train_labels="release"``), or synthetic cells for tests
   and demos, held in memory;
2. **split**: stratified train / validation / test indices
   (:func:`cellvision.splits.train_val_test_split`); the per-channel normalisation is fitted on
   the training cells only and travels with the trained model;
3. **sampler**: :class:`~cellvision.sampling.ClassBalancedSampler` (``alpha``) over the
   training labels, sharded under DDP;
4. **augmentation**: dihedral flips/rotations, reflected shifts, optionally rotations by any
   angle (``max_rotation``, 45 in the presets) and intensity jitter (``intensity_jitter``;
   off in the presets), run on the device by the engine's ``batch_transform``;
5. **model**: the registered model with its head initialised to the class prior of the
   training batches (:func:`~cellvision.sampling.expected_class_distribution`) in the form
   the recipe's ``loss`` wants, AdamW and a linear warm-up + cosine schedule stepped per batch
   (:mod:`cellvision.optim`); ``mixup`` mixes the batches, ``n_models`` trains an ensemble;
6. **training**: :func:`cellvision.engine.fit`, with a balanced report on the validation cells
   every epoch; ``select="last"`` keeps the last epoch, ``select="best"`` restores the epoch
   with the best validation balanced accuracy;
7. **testing**: :func:`evaluate` on cells that neither trained nor selected anything,
   through the classifier's inference path (``tta``, ``logit_adjust``, the ensemble mean and
   the ``amp``/``channels_last`` fast path).

``train_labels="release"`` trains the network on the seven release classes (G1, S, G2 apart)
and sums the three interphase probabilities at prediction; splits, folds and reports stay on
the five merged classes.

:func:`default_recipe` gives the named presets (:data:`PRESETS`: ``realtime``, the default;
``accurate``; ``legacy``, the 0.1.0 recipe) or a model's tuned defaults.

:func:`train` returns a :class:`TrainedClassifier` that predicts new cells and saves itself to
one safe checkpoint; :func:`cross_validate` repeats the recipe over stratified folds;
:func:`run_study` is the whole study of the ``cellvision cellcycle train`` command (model,
raw-pixel baseline, test table, ``results.json`` and figures); :func:`sweep_objective` is the
Optuna objective of ``cellvision sweep cellcycle``.

Epochs are counted from 1 everywhere (logs, history records, figures, checkpoints).

Examples
--------
>>> from cellvision.data import make_synthetic_cells
>>> from cellvision.splits import stratified_split
>>> data = make_synthetic_cells([40, 12, 8, 8, 8], size=32, seed=0)
>>> train_idx, test_idx = stratified_split(data.targets, 0.25, seed=0)
>>> recipe = CellCycleRecipe(epochs=1, batch_size=16, width=8, depth=2)
>>> trained = train(recipe, subset(data, train_idx), device="cpu", progress=False)
>>> trained.predict_proba(data.images[test_idx]).shape
torch.Size([19, 5])
>>> report = evaluate(trained, subset(data, test_idx))
>>> 0.0 <= report.balanced_accuracy <= 1.0
True
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader
from typing_extensions import Self

from cellvision.checkpoint import load_checkpoint, save_checkpoint
from cellvision.config import (
    Config,
    as_builtin_number,
    check_choice,
    check_non_negative_int,
    check_positive_float,
    check_positive_int,
    check_probability,
)
from cellvision.data import (
    CHANNEL_SIGNALS,
    DEFAULT_CHANNELS,
    INTERPHASE_MERGE,
    LABEL_FREE_CHANNELS,
    CellImageDataset,
    Compose,
    Normalize,
    RandomChannelDrop,
    RandomDihedral,
    RandomIntensity,
    RandomRotation,
    RandomTranslate,
    channel_name,
    channel_stats,
    is_label_free,
    load_cells,
    load_jurkat_sample,
    make_synthetic_cells,
    merge_labels,
    to_float_images,
)
from cellvision.engine import History, fit
from cellvision.engine import predict as predict_outputs
from cellvision.layers import init_class_prior_
from cellvision.losses import (
    adjust_logits,
    balanced_softmax_loss,
    focal_loss,
    init_prior_log_odds_,
    logit_adjusted_cross_entropy,
    one_vs_all_loss,
    one_vs_all_probabilities,
)
from cellvision.metrics import BalancedClassificationMetrics, ClassificationReport
from cellvision.models import ResNet, create_model
from cellvision.optim import WeightEMA, param_groups, warmup_cosine
from cellvision.sampling import ClassBalancedSampler, expected_class_distribution
from cellvision.splits import StratifiedKFoldSplitter, stratified_split, train_val_test_split
from cellvision.tta import predict_tta

__all__ = [
    "AMP_MODES",
    "DEFAULT_PRESET",
    "LOSSES",
    "MODELS",
    "PRESETS",
    "QUICK_COUNTS",
    "ROTATION_INTERPOLATIONS",
    "SWEEP_SPACE",
    "TABLE_METRICS",
    "TRAIN_LABELS",
    "TTA_MODES",
    "CellCycleRecipe",
    "CrossValidationResult",
    "RawPixelLinear",
    "StudyResult",
    "TrainedClassifier",
    "build_model",
    "channel_report",
    "cross_validate",
    "default_recipe",
    "evaluate",
    "load_data",
    "load_unlabelled",
    "resolve_amp",
    "run_study",
    "subset",
    "sweep_objective",
    "train",
    "train_pixel_baseline",
]

#: Registered models the recipe knows how to size.
MODELS = ("cellcycle_convnet", "cellcycle_vit", "cellcycle_resnet")
#: Training losses of the ``loss`` field (see :mod:`cellvision.losses`).
LOSSES = ("cross_entropy", "logit_adjusted", "balanced_softmax", "focal", "one_vs_all")
#: Losses that already remove the training prior (no post-hoc ``logit_adjust`` on top).
_PRIOR_ADJUSTING_LOSSES = ("logit_adjusted", "balanced_softmax")
#: Test-time augmentation of the ``tta`` field: none, or the 8 dihedral views averaged.
TTA_MODES = ("none", "d4")
#: Classes the network of the ``train_labels`` field learns: the five merged ones, or the
#: release's finer ones (G1, S, G2 apart), merged into the five at prediction.
TRAIN_LABELS = ("merged", "release")
#: Prediction precision of the ``amp`` field: float32, bfloat16 autocast, or bfloat16 where
#: the device computes it natively and float32 elsewhere.
AMP_MODES = ("none", "bf16", "auto")
#: Resampling of the ``rotation_interpolation`` field: the nearest input pixel's value, or
#: bilinear interpolation.
ROTATION_INTERPOLATIONS = ("nearest", "bilinear")
#: Named recipes of :func:`default_recipe` (``legacy`` is the 0.1.0 default, kept reproducible).
PRESETS = ("realtime", "accurate", "legacy")
#: The preset :func:`default_recipe` returns when neither a model nor a preset is named.
DEFAULT_PRESET = "realtime"
#: Cells per class of a ``--quick`` synthetic run (Interphase ... Telophase).
QUICK_COUNTS = (300, 100, 40, 24, 30)
#: Metrics shown in the tables, in order, with their column titles.
TABLE_METRICS = (
    ("balanced_accuracy", "bal_acc"),
    ("macro_f1", "macro_f1"),
    ("cohen_kappa", "kappa"),
    ("roc_auc", "auroc"),
)
#: The search space of :func:`sweep_objective`: name -> (kind, arguments).
#: ``examples/sweep_wandb.yaml`` declares the same space for wandb.
SWEEP_SPACE: dict[str, tuple[str, tuple[Any, ...]]] = {
    "lr": ("log_float", (3e-4, 1e-2)),
    "batch_size": ("categorical", (32, 64, 128)),
    "dropout": ("float", (0.0, 0.3)),
    "alpha": ("float", (0.5, 1.0)),
    "width": ("categorical", (16, 24, 32, 48)),
}
_EVAL_BATCH = 256
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")


# --------------------------------------------------------------------------- the recipe
@dataclasses.dataclass(frozen=True, kw_only=True)
class CellCycleRecipe(Config):
    """Every setting of one cell-cycle run (flat, so sweeps build it with ``from_flat_dict``).

    Parameters
    ----------
    model : {"cellcycle_convnet", "cellcycle_vit", "cellcycle_resnet"}
        Registered model name.
    width : int
        ConvNet ``channels`` (and MLP width) / ViT ``emb_size`` (the ViT MLP is twice as
        wide) / ResNet ``stem_channels`` and first stage width (every further stage doubles
        it: 32 gives stages 32-64-128).
    depth : int
        ConvNet ``n_blocks`` / ViT ``n_blks`` / ResNet number of stages (one residual block
        each; ``model_overrides=(("depths", (1, 2, 1)),)`` changes the blocks per stage).
    kernel_size, pool_every : int
        ConvNet kernel side and a max-pool after every this many blocks (ignored by the ViT).
    patch_size, n_heads : int
        ViT patch side and attention heads (ignored by the ConvNet).
    dropout : float
        Model dropout.
    model_overrides : tuple of (str, value) pairs
        Further model config fields, applied last, e.g. ``(("pool", "cls"),)`` for the ViT.
    channels : tuple of str
        Image channels read from a Jurkat folder; the default ``("Ch3", "Ch6")``
        (brightfield, darkfield) is label-free. ``Ch4`` is the DNA stain the labels were
        derived from: a run with it is not label-free classification. Synthetic cells get
        the same number of channels.
    epochs, batch_size : int
        Training length and per-process batch size.
    lr, weight_decay : float
        AdamW peak learning rate and decoupled weight decay.
    decay_all : bool
        ``True`` decays every parameter; ``False`` exempts biases, normalisation weights,
        position embeddings and the class token (:func:`cellvision.optim.param_groups`).
    schedule : {"warmup_cosine", "constant"}
        Learning-rate schedule, stepped per batch.
    warmup_fraction : float
        Fraction of the steps spent warming up (``"warmup_cosine"``).
    alpha : float
        :class:`~cellvision.sampling.ClassBalancedSampler` rebalancing strength in ``[0, 1]``.
    defer_epochs, early_alpha : int, float
        Deferred re-balancing (Cao et al., NeurIPS 2019): the first ``defer_epochs`` epochs
        draw with sampler strength ``early_alpha`` (``0`` is the natural class mix), the rest
        with ``alpha``. ``defer_epochs=0`` (the default) draws with ``alpha`` throughout; it
        must be smaller than ``epochs``. The head prior, loss prior and ``class_prior`` are
        those of ``alpha``, the mix of the last epochs.
    val_fraction, test_fraction : float
        Stratified fractions of every class held out for validation and test.
    select : {"last", "best"}
        Which epoch's weights are kept: the last, or the best by validation balanced accuracy.
    augment : bool
        Augment training batches.
    max_shift : int
        Largest random shift of the augmentation, in pixels.
    max_rotation : float
        Largest angle, in degrees, of a random rotation of the augmentation on top of its
        dihedral symmetries (:class:`~cellvision.data.transforms.RandomRotation`, reflected
        corners); 0 turns it off, 45 with the quarter turns covers every angle.
    rotation_interpolation : {"nearest", "bilinear"}
        How that rotation resamples the pixels. ``"nearest"`` (the default) copies the value
        of the nearest input pixel, so a rotated cell keeps its pixel values and texture;
        ``"bilinear"`` smooths it, which on real cells cost Prophase recall, since the test
        cells are never resampled.
    intensity_jitter : float
        Strength ``j`` of the augmentation's random intensity change of each normalised cell,
        ``x * U(1 - j, 1 + j) + U(-j, j)`` (:class:`~cellvision.data.transforms.
        RandomIntensity`); 0 turns it off.
    channel_dropout : float
        Probability in ``[0, 1)`` that a training cell loses one channel: it is set to the
        channel's training mean (0 after normalisation) everywhere
        (:class:`~cellvision.data.transforms.RandomChannelDrop`), so the network also learns
        to classify from the other channel alone. 0 turns it off; above 0 it needs two or
        more channels. Training only: prediction always sees every channel.
    channel_dropout_channels : tuple of str
        The channels that may be blanked (among ``channels``), one at a time; empty (the
        default) means any of them.
    auxiliary_channel : str or None
        A channel the network never sees but learns to predict (in-silico labelling): a
        small decoder on the last feature map of ``cellcycle_resnet`` predicts this channel,
        average-pooled to that map's size times 2, with a mean squared error added to the
        loss at ``auxiliary_weight``. The training cells must hold it after ``channels``
        (:attr:`data_channels`, e.g. ``("Ch3", "Ch6", "Ch4")`` with ``"Ch4"`` here, the DNA
        stain); the decoder is dropped after training, so the classifier predicts from
        ``channels`` alone (a stain used this way keeps prediction label-free) and ignores
        that last channel where it is given. ``None`` (the default) turns it off.
    auxiliary_weight : float
        Weight of the auxiliary mean squared error (on the normalised channel) in the loss.
    baseline_epochs : int
        Epochs of the raw-pixel linear baseline of :func:`run_study` (0 skips it).
    loss : {"cross_entropy", "logit_adjusted", "balanced_softmax", "focal", "one_vs_all"}
        Training loss (:mod:`cellvision.losses`). ``logit_adjusted`` and ``balanced_softmax``
        use the class mix of the training batches (``class_prior``, the sampler's mix) and
        give logits for the balanced error directly; ``one_vs_all`` predicts with the
        normalised sigmoids.
    tau : float
        Strength of ``loss="logit_adjusted"`` (``>= 0``; 1 is Bayes-consistent).
    focal_gamma : float
        Focusing exponent of ``loss="focal"`` (``>= 0``; 0 is cross-entropy).
    logit_adjust : float
        Post-hoc logit adjustment at prediction time
        (:func:`~cellvision.losses.adjust_logits` with ``tau=logit_adjust`` against the
        training batch mix); 0 is off. Not allowed with the losses that already adjust.
    tta : {"none", "d4"}
        Test-time augmentation: ``"d4"`` averages the probabilities of the 8 dihedral views
        (:func:`~cellvision.tta.predict_tta`) in every prediction, 8 times the cost.
    tta_confidence : float
        Confidence gate of ``tta="d4"``, in ``[0, 1]``: every cell is first predicted from
        one view, and a cell whose top probability there (after ``logit_adjust``, on the
        returned classes) is above ``tta_confidence`` keeps that prediction; only the other
        cells are averaged over the 8 views. 1 (the default) views every cell 8 ways; 0
        none. The cost per cell is one view plus 8 for each gated cell, so the throughput
        depends on how many cells of a sample are uncertain (at worst 9 views per cell).
    amp : {"none", "bf16", "auto"}
        Prediction precision: ``"bf16"`` runs the forward passes under bfloat16 autocast
        (fast on CPUs with AVX-512 bf16 / AMX); ``"auto"`` does so only where the device
        computes bfloat16 natively (a CPU with AVX-512 or AMX for oneDNN, a CUDA GPU with
        bf16 support) and predicts in float32 elsewhere, where emulated bfloat16 is slower
        (on an AVX2-only CPU about 4 times). Training stays in float32.
    channels_last : bool
        Predict in ``channels_last`` memory format (the model is converted once when the
        classifier is built or loaded).
    mixup : float
        Mixup ``Beta(mixup, mixup)`` strength on the training batches (Zhang et al., ICLR
        2018); 0 is off.
    cutmix : float
        CutMix ``Beta(cutmix, cutmix)`` strength (Yun et al., ICCV 2019): a box of another
        training cell is pasted in and the targets are mixed by area; 0 is off. At most one of
        ``mixup`` and ``cutmix`` may be on.
    n_models : int
        Ensemble size: members trained with seeds ``seed, seed + 1, ...`` inside one
        :class:`TrainedClassifier`, whose probabilities are the members' mean.
    member_channels : tuple of tuple of str
        The channels each ensemble member sees, one entry per member (``n_models`` of them),
        each a non-empty selection of ``channels``; the first must be ``channels`` itself
        (the first member, :attr:`TrainedClassifier.model`, is what embeddings, Grad-CAM and
        fine-tuning use). Members on other channel sets find other rare cells, for example
        ``(("Ch3", "Ch6"), ("Ch3",))`` adds a brightfield-only member. Every member is
        normalised and augmented with the whole cell and then keeps its channels;
        ``channel_dropout`` blanks only a member's own channels (a one-channel member's only
        when ``channel_dropout_channels`` names it). Empty (the default): every member sees
        all of ``channels``.
    ema : float
        Decay in ``[0, 1)`` of an exponential moving average of each member's weights and
        BatchNorm statistics (:class:`~cellvision.optim.WeightEMA`, updated after every
        optimizer step); the classifier predicts with the average instead of the last
        weights, at no extra prediction cost. 0 (the default) is off; not allowed with
        ``select="best"``.
    train_labels : {"merged", "release"}
        The classes the network learns. ``"merged"``: the five classes of
        :data:`~cellvision.data.MERGED_CELL_CYCLE_PHASES` (cells labelled with the seven
        release classes are merged with :data:`~cellvision.data.INTERPHASE_MERGE` first).
        ``"release"``: the finer classes of the data it is given (load them with
        ``load_data(..., release_labels=True)``: G1, S and G2 apart); sampler, head prior,
        loss, ``class_prior`` and ``logit_adjust`` work on those, and the classifier returns
        the merged classes, the interphase probabilities summed. A cross-validation study on
        real cells found it better than training on the merged classes. Data without finer
        classes (synthetic cells, an already merged folder) train exactly as ``"merged"``.
    seed : int
        Seed of the split, sampler, augmentation and weights.

    Raises
    ------
    ValueError, TypeError
        If a field is out of range or has the wrong type (the message names the field).

    Examples
    --------
    >>> recipe = CellCycleRecipe(epochs=5, width=16)
    >>> CellCycleRecipe.from_json(recipe.to_json()) == recipe
    True
    >>> CellCycleRecipe.from_flat_dict(recipe.to_flat_dict() | {"lr": "0.001"}).lr
    0.001
    """

    model: str = "cellcycle_convnet"
    width: int = 32
    depth: int = 4
    kernel_size: int = 3
    pool_every: int = 1
    patch_size: int = 11
    n_heads: int = 4
    dropout: float = 0.0
    model_overrides: tuple[tuple[str, Any], ...] = ()
    channels: tuple[str, ...] = DEFAULT_CHANNELS
    epochs: int = 30
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    decay_all: bool = True
    schedule: str = "warmup_cosine"
    warmup_fraction: float = 0.2
    alpha: float = 0.9
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    select: str = "last"
    augment: bool = True
    max_shift: int = 4
    max_rotation: float = 0.0
    rotation_interpolation: str = "nearest"
    intensity_jitter: float = 0.1
    channel_dropout: float = 0.0
    channel_dropout_channels: tuple[str, ...] = ()
    auxiliary_channel: str | None = None
    auxiliary_weight: float = 1.0
    baseline_epochs: int = 12
    loss: str = "cross_entropy"
    tau: float = 1.0
    focal_gamma: float = 2.0
    logit_adjust: float = 0.0
    tta: str = "none"
    tta_confidence: float = 1.0
    amp: str = "none"
    channels_last: bool = False
    mixup: float = 0.0
    cutmix: float = 0.0
    n_models: int = 1
    member_channels: tuple[tuple[str, ...], ...] = ()
    ema: float = 0.0
    defer_epochs: int = 0
    early_alpha: float = 0.5
    train_labels: str = "merged"
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("model", self.model, MODELS)
        for name in ("width", "depth", "kernel_size", "pool_every", "patch_size", "n_heads"):
            check_positive_int(name, getattr(self, name))
        check_probability("dropout", self.dropout)
        for item in self.model_overrides:
            if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
                raise ValueError(
                    f"model_overrides must be (name, value) pairs, got {self.model_overrides!r}"
                )
        if not self.channels or not all(isinstance(c, str) for c in self.channels):
            raise ValueError(f"channels must be a non-empty tuple of str, got {self.channels!r}")
        check_positive_int("epochs", self.epochs)
        check_positive_int("batch_size", self.batch_size)
        check_positive_float("lr", self.lr)
        if not (isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        check_choice("schedule", self.schedule, ("warmup_cosine", "constant"))
        if not (isinstance(self.warmup_fraction, (int, float)) and 0 <= self.warmup_fraction <= 1):
            raise ValueError(f"warmup_fraction must be in [0, 1], got {self.warmup_fraction!r}")
        for name in ("alpha", "early_alpha"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")
        check_non_negative_int("defer_epochs", self.defer_epochs)
        if self.defer_epochs >= self.epochs:
            raise ValueError(
                f"defer_epochs must be smaller than epochs ({self.epochs}), got "
                f"{self.defer_epochs!r}"
            )
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 < value < 0.5):
                raise ValueError(f"{name} must be in (0, 0.5), got {value!r}")
        check_choice("select", self.select, ("last", "best"))
        check_non_negative_int("max_shift", self.max_shift)
        rotation = as_builtin_number(self.max_rotation)
        object.__setattr__(self, "max_rotation", rotation)
        if not (
            isinstance(rotation, (int, float))
            and not isinstance(rotation, bool)
            and 0.0 <= rotation <= 180.0
        ):
            raise ValueError(
                f"max_rotation must be a number of degrees in [0, 180], got {self.max_rotation!r}"
            )
        check_choice("rotation_interpolation", self.rotation_interpolation, ROTATION_INTERPOLATIONS)
        jitter = check_probability("intensity_jitter", self.intensity_jitter)
        object.__setattr__(self, "intensity_jitter", jitter)
        object.__setattr__(
            self, "channel_dropout", check_probability("channel_dropout", self.channel_dropout)
        )
        unknown = [c for c in self.channel_dropout_channels if c not in self.channels]
        if unknown or len(set(self.channel_dropout_channels)) != len(self.channel_dropout_channels):
            raise ValueError(
                f"channel_dropout_channels must be distinct names among channels "
                f"{self.channels!r}, got {self.channel_dropout_channels!r}"
            )
        if self.channel_dropout and not self.channel_dropout_channels and len(self.channels) < 2:
            raise ValueError(
                f"channel_dropout must be 0 with a single channel (dropping it would blank the "
                f"cell), got {self.channel_dropout!r} with channels {self.channels!r}"
            )
        aux = self.auxiliary_channel
        if aux is not None and not isinstance(aux, str):
            raise TypeError(f"auxiliary_channel must be None or a str, got {aux!r}")
        if aux is not None and aux in self.channels:
            raise ValueError(
                f"auxiliary_channel must be None or a channel name not among channels "
                f"{self.channels!r}, got {aux!r}"
            )
        if aux is not None and self.model != "cellcycle_resnet":
            raise ValueError(
                f"auxiliary_channel needs model='cellcycle_resnet' (its decoder reads the "
                f"network's last feature map), got model={self.model!r}"
            )
        weight = check_positive_float("auxiliary_weight", self.auxiliary_weight)
        object.__setattr__(self, "auxiliary_weight", weight)
        check_non_negative_int("baseline_epochs", self.baseline_epochs)
        check_choice("loss", self.loss, LOSSES)
        for name in ("tau", "focal_gamma", "logit_adjust", "mixup", "cutmix"):
            value = as_builtin_number(getattr(self, name))
            object.__setattr__(self, name, value)
            if not (
                isinstance(value, (int, float))
                and not isinstance(value, bool)
                and math.isfinite(value)
                and value >= 0
            ):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.mixup and self.cutmix:
            raise ValueError(
                f"at most one of mixup and cutmix may be > 0, got mixup={self.mixup!r} and "
                f"cutmix={self.cutmix!r}"
            )
        if self.logit_adjust and self.loss in _PRIOR_ADJUSTING_LOSSES:
            raise ValueError(
                f"logit_adjust must be 0 with loss={self.loss!r} (the loss already removes the "
                f"training prior), got {self.logit_adjust!r}"
            )
        check_choice("tta", self.tta, TTA_MODES)
        gate = check_probability("tta_confidence", self.tta_confidence, inclusive_high=True)
        object.__setattr__(self, "tta_confidence", gate)
        check_choice("amp", self.amp, AMP_MODES)
        if not isinstance(self.channels_last, bool):
            raise TypeError(f"channels_last must be a bool, got {self.channels_last!r}")
        check_positive_int("n_models", self.n_models)
        self._check_member_channels()
        self_ema = as_builtin_number(self.ema)
        object.__setattr__(self, "ema", self_ema)
        if not (
            isinstance(self_ema, (int, float))
            and not isinstance(self_ema, bool)
            and 0.0 <= self_ema < 1.0
        ):
            raise ValueError(f"ema must be a number in [0, 1), got {self.ema!r}")
        if self_ema and self.select == "best":
            raise ValueError(
                f"ema must be 0 with select='best' (the average is of the last steps, not of "
                f"the best epoch), got {self.ema!r}"
            )
        check_choice("train_labels", self.train_labels, TRAIN_LABELS)
        check_non_negative_int("seed", self.seed)

    def _check_member_channels(self) -> None:
        members = self.member_channels
        if not isinstance(members, (tuple, list)) or not all(
            isinstance(entry, (tuple, list)) for entry in members
        ):
            raise TypeError(
                f"member_channels must be a tuple of tuples of channel names, got {members!r}"
            )
        members = tuple(tuple(entry) for entry in members)
        object.__setattr__(self, "member_channels", members)
        if not members:
            return
        if len(members) != self.n_models:
            raise ValueError(
                f"member_channels must have one entry per ensemble member (n_models="
                f"{self.n_models}), got {len(members)} entries: {members!r}"
            )
        for entry in members:
            if (
                not entry
                or not all(isinstance(c, str) and c in self.channels for c in entry)
                or len(set(entry)) != len(entry)
            ):
                raise ValueError(
                    f"member_channels entries must be non-empty selections of distinct "
                    f"channels among {self.channels!r}, got {entry!r}"
                )
        if tuple(members[0]) != tuple(self.channels):
            raise ValueError(
                f"member_channels must start with channels {self.channels!r} (the first member "
                f"sees every channel), got {members[0]!r}"
            )

    @property
    def member_inputs(self) -> tuple[tuple[int, ...], ...]:
        """Indices into ``channels`` of the channels each ensemble member sees.

        Returns
        -------
        tuple of tuple of int
            ``n_models`` entries, from :attr:`member_channels` (all channels when it is
            empty).

        Examples
        --------
        >>> CellCycleRecipe(channels=("Ch3", "Ch6"), n_models=2).member_inputs
        ((0, 1), (0, 1))
        >>> CellCycleRecipe(channels=("Ch3", "Ch6"), n_models=3,
        ...                 member_channels=(("Ch3", "Ch6"), ("Ch3",), ("Ch6",))).member_inputs
        ((0, 1), (0,), (1,))
        """
        if not self.member_channels:
            return (tuple(range(len(self.channels))),) * self.n_models
        return tuple(tuple(self.channels.index(c) for c in m) for m in self.member_channels)

    @property
    def data_channels(self) -> tuple[str, ...]:
        """The channels the training cells must hold: ``channels``, then ``auxiliary_channel``.

        Returns
        -------
        tuple of str
            What to pass to :func:`load_data` to train this recipe.

        Examples
        --------
        >>> CellCycleRecipe(channels=("Ch3", "Ch6")).data_channels
        ('Ch3', 'Ch6')
        >>> CellCycleRecipe(model="cellcycle_resnet", channels=("Ch3", "Ch6"),
        ...                 auxiliary_channel="Ch4").data_channels
        ('Ch3', 'Ch6', 'Ch4')
        """
        aux = () if self.auxiliary_channel is None else (self.auxiliary_channel,)
        return tuple(self.channels) + aux


#: Tuned defaults per model (the dataclass defaults are the ConvNet's), and what ``--quick``
#: changes on top of them.
_MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "cellcycle_convnet": {},
    "cellcycle_vit": {"epochs": 100, "lr": 1e-3, "weight_decay": 0.05, "width": 64, "depth": 4,
                      "n_heads": 4, "patch_size": 11, "baseline_epochs": 0},
    # Stages 32-64-128 after a 16-channel stem kept at full 40x40 resolution (stride 1).
    "cellcycle_resnet": {"epochs": 40, "width": 32, "depth": 3,
                         "model_overrides": (("stem_channels", 16),)},
}  # fmt: skip
_QUICK: dict[str, dict[str, Any]] = {
    "cellcycle_convnet": {"epochs": 10, "baseline_epochs": 10, "batch_size": 32, "width": 16,
                          "depth": 3},
    "cellcycle_vit": {"epochs": 10, "batch_size": 32, "width": 32, "depth": 2, "patch_size": 8},
    "cellcycle_resnet": {"epochs": 10, "baseline_epochs": 10, "batch_size": 32, "width": 16},
}  # fmt: skip
#: The named recipes. ``legacy`` is the 0.1.0 default (ConvNet, brightfield only, plain
#: cross-entropy, no test-time augmentation). ``realtime`` and ``accurate`` were chosen by
#: 5-fold cross-validation on the developer copy of the real release
#: (``benchmarks/cv_cellcycle_real.py``): both label-free channels, the residual network with a
#: full-resolution stem, trained on the 7 release classes (G1/S/G2 apart, summed into
#: Interphase when predicting) with post-hoc adjustment by the sampler's training mix.
#: ``accurate`` averages two networks on different channel sets (both channels, and
#: brightfield alone), each over the 8 D4 views, at tau 1: on the same folds the nine pairings
#: of three seeds of each gave 0.732 balanced accuracy and kappa 0.771 with the views (0.725 /
#: 0.766 without), against 0.705 / 0.757 for two-seed ensembles of the two-channel network and
#: 0.707 / 0.757 for three seeds of it, all at tau 1 (the previous ``accurate``, three seeds at
#: tau 2, was not measured again on these folds); the single-model ``realtime`` keeps tau 1, no
#: views.
#: Both train without the random intensity change (``intensity_jitter=0``): on real cells it
#: cost 0.015-0.035 kappa (three seeds) at the same balanced accuracy (presumably because the
#: darkfield intensity that it blurs helps to tell Prophase from G2). Both add rotations by
#: any angle, resampled by nearest pixel (bilinear smoothing cost Prophase recall): balanced
#: accuracy rose in all 6 benchmark comparisons (two seeds, two fold seeds, with and without
#: views), by 0.02 on average at about the same kappa; the 2-thread command run gave 0.683
#: against 0.689, within the fold noise (kappa 0.738). Neither preset reaches 0.75 balanced
#: accuracy on average.
_PRESETS: dict[str, dict[str, Any]] = {
    "legacy": {"model": "cellcycle_convnet", "channels": ("Ch3",), "loss": "cross_entropy",
               "tta": "none"},
    "realtime": {"model": "cellcycle_resnet", **_MODEL_DEFAULTS["cellcycle_resnet"],
                 "channels": DEFAULT_CHANNELS, "train_labels": "release", "logit_adjust": 1.0,
                 "intensity_jitter": 0.0, "max_rotation": 45.0, "amp": "auto",
                 "channels_last": True, "tta": "none"},
    "accurate": {"model": "cellcycle_resnet", **_MODEL_DEFAULTS["cellcycle_resnet"],
                 "channels": DEFAULT_CHANNELS, "train_labels": "release", "logit_adjust": 1.0,
                 "intensity_jitter": 0.0, "max_rotation": 45.0, "amp": "auto",
                 "channels_last": True, "tta": "d4", "n_models": 2,
                 "member_channels": (DEFAULT_CHANNELS, ("Ch3",))},
}  # fmt: skip


def default_recipe(
    model: str | None = None,
    *,
    preset: str | None = None,
    quick: bool = False,
    **changes: Any,
) -> CellCycleRecipe:
    """A named recipe (``preset``) or a model's tuned defaults, optionally the ``--quick`` one.

    With neither ``model`` nor ``preset`` the :data:`DEFAULT_PRESET` is returned. The presets
    (:data:`PRESETS`):

    - ``"realtime"``: the residual network on both label-free channels, trained with
      rotations by any angle and without the random intensity change (``max_rotation=45``,
      ``intensity_jitter=0``), predicting under bfloat16 autocast in ``channels_last``
      format, fast enough to keep up with an imaging flow cytometer on a laptop CPU;
    - ``"accurate"``: an ensemble of two such networks that see different channels, one on
      brightfield and darkfield and one on brightfield alone (``member_channels``, seeds
      ``seed`` and ``seed + 1``; the two channel sets find different rare cells), each
      averaged over the 8 D4 views: 16 forward passes per cell and twice the training;
    - ``"legacy"``: the 0.1.0 default (ConvNet, brightfield ``Ch3`` only, cross-entropy, no
      test-time augmentation), kept so that earlier results can be reproduced.

    With ``model`` the model's own tuned defaults are used: the ConvNet's are the dataclass
    defaults; the ViT learns the cell shapes more slowly and gets 100 epochs, a lower
    learning rate, stronger weight decay, width 64 and no baseline; the ResNet gets 40
    epochs and stages 32-64-128. ``quick`` shortens the schedule and shrinks the model.

    Parameters
    ----------
    model : {"cellcycle_convnet", "cellcycle_vit", "cellcycle_resnet"}, optional
        Start from this model's defaults (not together with ``preset``).
    preset : {"realtime", "accurate", "legacy"}, optional
        Start from this named recipe.
    quick : bool, default False
        The small variant.
    **changes
        Further field values (they win over both). Other ``channels`` without
        ``member_channels`` give every member those channels (the ``accurate`` preset's
        brightfield-only member is then dropped from the channel sets); non-empty
        ``member_channels`` without ``n_models`` set ``n_models`` to their number.

    Returns
    -------
    CellCycleRecipe
        The recipe.

    Raises
    ------
    ValueError
        If ``model`` or ``preset`` is unknown, both are given, or a change is invalid (for
        example another ``n_models`` for a preset with ``member_channels``, without new
        ``member_channels``).

    Examples
    --------
    >>> default_recipe().model, default_recipe(preset="legacy").channels
    ('cellcycle_resnet', ('Ch3',))
    >>> default_recipe("cellcycle_convnet").epochs
    30
    >>> default_recipe("cellcycle_convnet", quick=True).epochs
    10
    >>> default_recipe("cellcycle_vit", quick=True, epochs=3).width
    32
    """
    if model is not None and preset is not None:
        raise ValueError(f"give model or preset, not both, got {model!r} and {preset!r}")
    if model is not None:
        check_choice("model", model, MODELS)
        base: dict[str, Any] = {"model": model, **_MODEL_DEFAULTS[model]}
    else:
        name = DEFAULT_PRESET if preset is None else preset
        check_choice("preset", name, PRESETS)
        base = dict(_PRESETS[name])
    quick_changes = _QUICK[base["model"]] if quick else {}
    sets = base.get("member_channels")
    if sets and "member_channels" not in changes:
        if "channels" in changes and tuple(changes["channels"]) != tuple(base["channels"]):
            # The preset's channel sets were for its channels.
            base.pop("member_channels")
        elif "n_models" in changes and changes["n_models"] != len(sets):
            raise ValueError(
                f"n_models of preset {name!r} is the number of its channel sets member_channels="
                f"{sets!r}; give member_channels (--member-channels) with n_models="
                f"{changes['n_models']!r}"
            )
    elif changes.get("member_channels") and "n_models" not in changes:
        changes = changes | {"n_models": len(changes["member_channels"])}
    return CellCycleRecipe(**(base | quick_changes | changes))


def channel_report(channels: Sequence[str], *, auxiliary: str | None = None) -> list[str]:
    """Lines saying which channels a run uses and whether it is label-free.

    Each channel is named with its signal (:data:`cellvision.data.CHANNEL_SIGNALS`). When a
    channel is not label-free (``Ch4``, the DNA stain the phase labels were derived from, or
    a channel of unknown meaning) the last line is a warning that the run is NOT label-free.
    An ``auxiliary`` channel (:attr:`CellCycleRecipe.auxiliary_channel`) gets a line of its
    own: the network learns to predict it while training and never sees it, so it does not
    change whether the predictions are label-free.

    Parameters
    ----------
    channels : sequence of str
        Channel names such as ``("Ch3", "Ch6")``: what the classifier sees.
    auxiliary : str, optional
        The recipe's auxiliary training target.

    Returns
    -------
    list of str
        The lines (without newlines).

    Raises
    ------
    ValueError
        If a channel name is invalid.

    Examples
    --------
    >>> channel_report(("Ch3", "Ch6"))
    ['channels: Ch3 = brightfield, Ch6 = darkfield (side scatter); label-free']
    >>> channel_report(["Ch4"])[-1][:33]
    'WARNING: this run is NOT label-fr'
    >>> channel_report(("Ch3", "Ch6"), auxiliary="Ch4")[1][:42]
    'auxiliary training target: Ch4 = DNA stain'
    """
    names = [channel_name(c) for c in channels]
    listed = ", ".join(f"{c} = {CHANNEL_SIGNALS.get(c, 'unknown signal')}" for c in names)
    lines = []
    if auxiliary is not None:
        aux = channel_name(auxiliary)
        lines.append(
            f"auxiliary training target: {aux} = {CHANNEL_SIGNALS.get(aux, 'unknown signal')}, "
            "predicted by the network while it trains; the classifier never sees it"
        )
    if is_label_free(names):
        return [f"channels: {listed}; label-free", *lines]
    others = [c for c in names if c not in LABEL_FREE_CHANNELS]
    return [
        f"channels: {listed}",
        *lines,
        f"WARNING: this run is NOT label-free: {', '.join(others)} "
        "(Ch4 is the DNA stain the phase labels were derived from); use Ch3 and/or Ch6 for "
        "label-free classification",
    ]


# --------------------------------------------------------------------------- data
def load_data(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    synthetic: bool = False,
    quick: bool = False,
    channels: Sequence[str] | None = None,
    counts: Sequence[int] | None = None,
    size: int | None = None,
    seed: int = 0,
    release_labels: bool = False,
) -> tuple[CellImageDataset, str]:
    """Return labelled cells in memory and a description of where they come from.

    This is the one place that decides what "the default data" is:

    - with ``data_dir``, the folder is read by :func:`cellvision.data.load_cells` (per-cell
      files or CellProfiler montages, detected by themselves; G1/S/G2 merged into
      Interphase; problem files skipped with a warning; cells keep their ids);
    - without it, the real Jurkat sample that ships with the package
      (:func:`cellvision.data.load_jurkat_sample`, 1,026 cells of 40x40 pixels, five merged
      classes, label-free channels only);
    - with ``synthetic=True`` (or ``counts``/``size``), synthetic cells
      (:func:`cellvision.data.make_synthetic_cells`: 2000/400/120/60/80 cells of 66x66
      pixels, or :data:`QUICK_COUNTS` cells of 48x48 with ``quick``), for tests and quick
      demos of any size.

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        A labelled folder with one sub-folder per phase.
    synthetic : bool, default False
        Synthetic cells instead of the embedded real sample.
    quick : bool, default False
        The small synthetic data set (the real sample is small already).
    channels : sequence of str, optional
        Channels to stack (folder, sample) or their number (synthetic). Default: the
        label-free :data:`~cellvision.data.DEFAULT_CHANNELS` ``("Ch3", "Ch6")`` for real
        cells, one channel for synthetic cells (as in 0.1.0).
    counts : sequence of int, optional
        Synthetic cells per class (implies ``synthetic``; overrides ``quick``).
    size : int, optional
        Synthetic image side (implies ``synthetic``; overrides ``quick``).
    seed : int, default 0
        Seed of the synthetic cells.
    release_labels : bool, default False
        Keep the seven release classes of real cells (G1, S and G2 apart, ``merge=None``)
        instead of merging the interphase stages: what a ``train_labels="release"`` recipe
        trains on (the recipe merges them itself wherever the five classes are needed).
        Synthetic cells have no finer classes and are the same either way.

    Returns
    -------
    data : CellImageDataset
        Images, labels, class names (and ids for real cells).
    description : str
        One line saying what the data are.

    Raises
    ------
    FileNotFoundError
        If ``data_dir`` is not a directory.
    ValueError
        If the folder holds no usable or no labelled cells, a channel is not in the embedded
        sample (it has Ch3 and Ch6 only), or ``data_dir`` is combined with synthetic cells.

    Examples
    --------
    >>> data, text = load_data()
    >>> len(data), data.images.shape[1:], data.class_names[0]
    (1026, torch.Size([2, 40, 40]), 'Interphase')
    >>> load_data(release_labels=True)[0].class_names[:3]
    ('G1', 'S', 'G2')
    >>> data, text = load_data(counts=[4, 2, 2, 2, 2], size=16)
    >>> len(data), text
    (12, 'synthetic cells 16x16, seed 0')
    """
    synthetic = synthetic or counts is not None or size is not None
    if channels is None:
        channels = ("Ch3",) if synthetic else DEFAULT_CHANNELS
    names = tuple(channels)
    merge = None if release_labels else INTERPHASE_MERGE
    if data_dir is not None:
        if synthetic:
            raise ValueError(
                f"data_dir must be None for synthetic cells (synthetic, counts or size), got "
                f"{str(data_dir)!r}"
            )
        data = load_cells(data_dir, channels=names, merge=merge, on_error="skip")
        if not data.is_labelled:
            raise ValueError(
                f"data_dir must hold labelled cells (one sub-folder per phase), got unlabelled "
                f"cells in {str(data_dir)!r}; classify them with load_unlabelled / "
                "`cellvision cellcycle predict`"
            )
        return data, f"Jurkat folder {data_dir} ({', '.join(names)})"
    if not synthetic:
        data = load_jurkat_sample(channels=names, merge=merge)
        return data, f"embedded real Jurkat sample ({', '.join(names)})"
    side = size if size is not None else (48 if quick else 66)
    if counts is None and quick:
        counts = QUICK_COUNTS
    data = make_synthetic_cells(
        list(counts) if counts is not None else None, size=side, channels=len(names), seed=seed
    )
    return data, f"synthetic cells {side}x{side}, seed {seed}"


def load_unlabelled(
    data_dir: str | os.PathLike[str], *, channels: Sequence[str] = DEFAULT_CHANNELS
) -> tuple[Tensor, list[str]]:
    """Read cells to classify: ``(N, C, H, W)`` images and one id per cell.

    The folder is read by :func:`cellvision.data.load_cells`, so every layout it accepts
    works: montages ``Ch<k>_<montage>.tif`` or per-cell files ``<cell id>_Ch<k>.<ext>``
    directly in the folder (unlabelled; ids such as ``"CP0001#17"`` or the cell ids), or
    phase sub-folders (the labels are ignored; ids such as ``"Prophase/CP0001#17"``).

    Parameters
    ----------
    data_dir : str or os.PathLike
        The folder.
    channels : sequence of str, default DEFAULT_CHANNELS
        Channels to stack, as the classifier was trained.

    Returns
    -------
    images : Tensor
        ``uint8``/``uint16`` images.
    ids : list of str
        One id per image.

    Raises
    ------
    FileNotFoundError
        If ``data_dir`` is not a directory.
    ValueError
        If no cell is found or the folder lacks one of ``channels`` (the message names the
        channels found).
    ImportError
        If Pillow is not installed.

    Examples
    --------
    >>> import tempfile
    >>> from PIL import Image
    >>> folder = Path(tempfile.mkdtemp())
    >>> for cell in ("7", "12"):
    ...     Image.new("L", (8, 8), color=30).save(folder / f"{cell}_Ch3.png")
    >>> images, ids = load_unlabelled(folder, channels=["Ch3"])
    >>> images.shape, ids
    (torch.Size([2, 1, 8, 8]), ['7', '12'])
    """
    names = tuple(channel_name(c) for c in channels)
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"data_dir must be an existing directory, got {str(data_dir)!r}")
    found = _channels_in(root)
    missing = [c for c in names if found and c not in found]
    if missing:
        raise ValueError(
            f"data_dir must hold every channel the classifier uses {names!r}, got "
            f"{str(root)!r} without {missing} (channels found: {sorted(found)})"
        )
    data = load_cells(root, channels=names, on_error="raise")
    ids = list(data.ids) if data.ids is not None else [f"cell-{i:05d}" for i in range(len(data))]
    return data.images, ids


_CHANNEL_IN_NAME = re.compile(r"(?:^|_)(ch\d+)(?:[_.]|$)", re.IGNORECASE)


def _channels_in(root: Path) -> set[str]:
    """The channel names that appear in the image file names of ``root`` (one level down too)."""
    found: set[str] = set()
    for folder in (root, *(p for p in root.iterdir() if p.is_dir())):
        for path in folder.iterdir():
            if path.is_file() and path.suffix.lower() in _IMAGE_SUFFIXES:
                found.update(channel_name(m) for m in _CHANNEL_IN_NAME.findall(path.name))
    return found


def subset(data: CellImageDataset, index: np.ndarray[Any, Any] | Sequence[int]) -> CellImageDataset:
    """The cells ``data[index]`` as a new in-memory data set (no transform).

    Parameters
    ----------
    data : CellImageDataset
        Labelled cells.
    index : array-like of int
        Positions to keep.

    Returns
    -------
    CellImageDataset
        The selected images, labels and the same class names.

    Examples
    --------
    >>> data = make_synthetic_cells([3, 2, 2, 2, 2], size=16)
    >>> part = subset(data, [0, 3])
    >>> len(part), part.targets.tolist() == data.targets[[0, 3]].tolist()
    (2, True)
    """
    idx = torch.as_tensor(np.asarray(index), dtype=torch.int64)
    return CellImageDataset(data.images[idx], data.targets[idx], data.class_names)


def _merge_index(class_names: Sequence[str]) -> tuple[Tensor, tuple[str, ...]]:
    """Merged class of every class (:data:`~cellvision.data.INTERPHASE_MERGE`) and the names."""
    index, merged = merge_labels(
        torch.arange(len(class_names)), INTERPHASE_MERGE, class_names=class_names
    )
    return index, merged


def _merged(data: CellImageDataset) -> CellImageDataset:
    """``data`` with its release classes merged (the same object when nothing merges)."""
    index, merged = _merge_index(data.class_names)
    if merged == tuple(data.class_names):
        return data
    targets = data.targets
    labels = torch.where(targets >= 0, index[targets.clamp(min=0)], targets)
    return CellImageDataset(data.images, labels, merged, ids=data.ids)


class _MergedClassMetrics(BalancedClassificationMetrics):
    """The balanced report of the merged classes, updated with fine-class logits and targets.

    The validation metric of a ``train_labels="release"`` run: the fine probabilities are
    summed per merged class, as :meth:`TrainedClassifier.logits` does, so ``val_*`` values
    (and ``select="best"``) are on the classes the classifier reports. The state is the
    parent's, so DDP synchronisation works unchanged.
    """

    def __init__(self, fine_class_names: Sequence[str]) -> None:
        index, merged = _merge_index(fine_class_names)
        super().__init__(len(merged), class_names=merged)
        self.fine_to_merged = index

    @torch.inference_mode()
    def update(self, input: Tensor, target: Tensor) -> Self:
        index = self.fine_to_merged.to(input.device)
        proba = torch.zeros(input.shape[0], self.n_classes, device=input.device)
        proba.index_add_(1, index, input.float().softmax(dim=1))
        scores = proba.clamp(min=torch.finfo(torch.float32).tiny).log()
        return super().update(scores, index[target.to(input.device)])


def _shard(n: int) -> np.ndarray[Any, np.dtype[np.int64]]:
    """This rank's interleaved share of ``range(n)`` (all of it without a process group)."""
    index = np.arange(n, dtype=np.int64)
    if dist.is_available() and dist.is_initialized():
        return index[dist.get_rank() :: dist.get_world_size()]
    return index


def _is_main_process() -> bool:
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


class _NormalizedBatches:
    """A re-iterable loader of normalised ``(images, labels)`` batches from memory."""

    def __init__(
        self, images: Tensor, labels: Tensor | None, normalize: Normalize, batch_size: int
    ) -> None:
        self.images, self.labels = images, labels
        self.normalize, self.batch_size = normalize, batch_size

    def __len__(self) -> int:
        return math.ceil(self.images.shape[0] / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor] | Tensor]:
        for start in range(0, self.images.shape[0], self.batch_size):
            x = self.normalize(to_float_images(self.images[start : start + self.batch_size]))
            if self.labels is None:
                yield x
            else:
                yield x, self.labels[start : start + self.batch_size]


# --------------------------------------------------------------------------- model
class RawPixelLinear(nn.Module):
    """Baseline: one linear layer on the flattened pixels (multinomial logistic regression).

    Parameters
    ----------
    n_pixels : int
        ``channels * height * width``.
    n_classes : int
        Number of classes.
    class_freqs : sequence of float
        Class prior for the bias (see :func:`cellvision.layers.init_class_prior_`).

    Examples
    --------
    >>> RawPixelLinear(16, 3, [0.5, 0.3, 0.2])(torch.zeros(2, 1, 4, 4)).softmax(-1)[0]
    tensor([0.5000, 0.3000, 0.2000], grad_fn=<SelectBackward0>)
    """

    def __init__(self, n_pixels: int, n_classes: int, class_freqs: Sequence[float]) -> None:
        super().__init__()
        self.linear = nn.Linear(n_pixels, n_classes)
        init_class_prior_(self.linear, class_freqs)

    def forward_features(self, x: Tensor) -> Tensor:
        """Flatten the images: ``(B, C, H, W) -> (B, C*H*W)``."""
        return x.flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        """Logits of the flattened images."""
        return self.linear(self.forward_features(x))  # type: ignore[no-any-return]


def build_model(
    recipe: CellCycleRecipe,
    *,
    n_classes: int,
    in_channels: int,
    img_size: int,
    class_freqs: Sequence[float],
) -> nn.Module:
    """Build the recipe's registered model, sized by its fields, head at ``class_freqs``.

    The head starts where the recipe's loss wants it: at the log prior for cross-entropy and
    the focal loss (an untrained model predicts the training mix), at ``(1 - tau)`` times
    the log prior for the logit-adjusted loss and uniform for the balanced softmax (their
    training logits add the prior back), and at the prior log-odds for One-vs-All
    (:func:`~cellvision.losses.init_prior_log_odds_`). The ResNet gets ``width`` stem
    channels and ``depth`` stages of widths ``width, 2 width, 4 width, ...``.

    Parameters
    ----------
    recipe : CellCycleRecipe
        Model name, width/depth and ``model_overrides``.
    n_classes, in_channels, img_size : int
        Shape of the problem.
    class_freqs : sequence of float
        Class prior of the head.

    Returns
    -------
    torch.nn.Module
        A freshly initialised model (seed the global RNG first for reproducible weights).

    Examples
    --------
    >>> model = build_model(CellCycleRecipe(width=8, depth=2), n_classes=5, in_channels=1,
    ...                     img_size=32, class_freqs=[0.6, 0.1, 0.1, 0.1, 0.1])
    >>> model.config.channels, model(torch.zeros(1, 1, 32, 32)).shape
    (8, torch.Size([1, 5]))
    >>> build_model(CellCycleRecipe(model="cellcycle_resnet", width=8, depth=3), n_classes=5,
    ...             in_channels=2, img_size=40, class_freqs=[0.6, 0.1, 0.1, 0.1, 0.1]
    ...             ).config.widths
    (8, 16, 32)
    """
    # The prior-based losses add (tau times) the log prior back in training; the head starts
    # at the rest, so the untrained model still predicts the training mix in the loss.
    # Other losses keep class_freqs untouched (the 0.1.0 recipe stays bit for bit the same).
    head_freqs: Sequence[float] = class_freqs
    if recipe.loss in _PRIOR_ADJUSTING_LOSSES:
        freqs = np.asarray(class_freqs, dtype=np.float64)
        power = 1.0 - recipe.tau if recipe.loss == "logit_adjusted" else 0.0
        freqs = (freqs / freqs.sum()) ** power
        head_freqs = (freqs / freqs.sum()).tolist()
    common: dict[str, Any] = {
        "n_classes": n_classes,
        "in_channels": in_channels,
        "img_size": img_size,
        "dropout": recipe.dropout,
        "class_freqs": head_freqs,
    }
    if recipe.model == "cellcycle_convnet":
        sized: dict[str, Any] = {
            "channels": recipe.width,
            "n_blocks": recipe.depth,
            "kernel_size": recipe.kernel_size,
            "pool_every": recipe.pool_every,
            "mlp_hidden": recipe.width,
        }
    elif recipe.model == "cellcycle_resnet":
        sized = {
            "stem_channels": recipe.width,
            "widths": tuple(recipe.width * 2**i for i in range(recipe.depth)),
            "depths": (1,) * recipe.depth,
        }
    else:
        sized = {
            "emb_size": recipe.width,
            "n_blks": recipe.depth,
            "n_heads": recipe.n_heads,
            "hidden_size": 2 * recipe.width,
            "patch_size": recipe.patch_size,
            "pool": "mean",
        }
    model = create_model(recipe.model, **(common | sized | dict(recipe.model_overrides)))
    if recipe.loss == "one_vs_all":
        head = getattr(model, "classifier", None) or getattr(model, "head", None)
        if not isinstance(head, nn.Linear):
            raise ValueError(f"model {recipe.model!r} must have a linear head for one_vs_all")
        init_prior_log_odds_(head, list(class_freqs))
    return model


class _SelectChannels(nn.Module):
    """The network on some channels of its input (an ensemble member of ``member_channels``).

    ``inputs`` indexes the input's channels; only ``network`` is kept in the classifier. The
    wrapper starts in the network's train/eval mode, so a prediction that restores the mode
    afterwards leaves the network as it found it.
    """

    def __init__(self, network: nn.Module, inputs: Sequence[int]) -> None:
        super().__init__()
        self.network = network
        self.inputs = list(inputs)
        self.train(network.training)

    def forward(self, x: Tensor) -> Tensor:
        return self.network(x[:, self.inputs])  # type: ignore[no-any-return]


class _AuxiliaryChannelNet(nn.Module):
    """Training wrapper of ``recipe.auxiliary_channel`` (in-silico labelling).

    The network sees the channels ``inputs`` (default: every channel but the last); a small
    decoder on its last feature map predicts the last channel, average-pooled to twice that
    map's size, and keeps the mean squared error in ``loss`` for the training loss to add.
    Only ``network`` is kept after training.
    """

    def __init__(self, network: nn.Module, inputs: Sequence[int] | None = None) -> None:
        super().__init__()
        if not isinstance(network, ResNet):
            raise TypeError(f"network must be a ResNet, got {type(network).__name__}")
        self.network = network
        self.inputs: slice | list[int] = slice(0, -1) if inputs is None else list(inputs)
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(network.config.widths[-1], 32, 2, stride=2),
            nn.BatchNorm2d(32),
            nn.ReLU(inplace=True),
            nn.Conv2d(32, 1, 3, padding=1),
        )
        self.loss = torch.zeros(())

    def forward(self, x: Tensor) -> Tensor:
        feature_map = self.network.forward_feature_map(x[:, self.inputs])
        logits: Tensor = self.network.forward_head(feature_map.mean(dim=(2, 3)))
        if self.training:
            predicted = self.decoder(feature_map).float()
            target = nn.functional.adaptive_avg_pool2d(x[:, -1:].float(), predicted.shape[-2:])
            self.loss = nn.functional.mse_loss(predicted, target)
        return logits


def _add_auxiliary_loss(
    loss_fn: Callable[..., Tensor], network: _AuxiliaryChannelNet, weight: float
) -> Callable[..., Tensor]:
    """``loss_fn`` plus ``weight`` times the auxiliary loss of the batch just forwarded."""

    def loss(outputs: Tensor, target: Tensor) -> Tensor:
        return loss_fn(outputs, target) + weight * network.loss

    return loss


def _droppable_channels(
    recipe: CellCycleRecipe,
    inputs: tuple[int, ...],
    everything: tuple[int, ...],
    *,
    auxiliary: bool,
) -> tuple[int, ...] | None:
    """The channels ``channel_dropout`` may blank for a member on ``inputs``.

    ``None`` is any channel of the cell, ``()`` none (no dropout for this member): a member
    on a subset of the channels drops only its own, named ones if any (a one-channel member
    only when its channel is named, as a one-channel recipe), and never the auxiliary target.
    """
    named = tuple(recipe.channels.index(c) for c in recipe.channel_dropout_channels)
    if inputs == everything:
        return named or (everything if auxiliary else None)
    own = tuple(i for i in (named or inputs) if i in inputs)
    return own if named or len(own) > 1 else ()


def _input_channels(recipe: CellCycleRecipe, data: CellImageDataset) -> CellImageDataset:
    """``data`` without the recipe's auxiliary channel (the last one), checked to be there."""
    if recipe.auxiliary_channel is None:
        return data
    expected = len(recipe.data_channels)
    if data.images.ndim != 4 or data.images.shape[1] != expected:
        raise ValueError(
            f"cells for a recipe with auxiliary_channel={recipe.auxiliary_channel!r} must hold "
            f"its data_channels {recipe.data_channels!r} ({expected} channels, the auxiliary "
            f"one last), got images of shape {tuple(data.images.shape)!r}"
        )
    return CellImageDataset(data.images[:, :-1], data.targets, data.class_names)


def _training_loss(recipe: CellCycleRecipe, prior: Sequence[float]) -> Callable[..., Tensor]:
    """The recipe's training loss ``loss(logits, target)`` (``prior``: the batch class mix)."""
    if recipe.loss == "logit_adjusted":
        return functools.partial(logit_adjusted_cross_entropy, prior=list(prior), tau=recipe.tau)
    if recipe.loss == "balanced_softmax":
        return functools.partial(balanced_softmax_loss, counts=list(prior))
    if recipe.loss == "focal":
        return functools.partial(focal_loss, gamma=recipe.focal_gamma)
    if recipe.loss == "one_vs_all":
        return one_vs_all_loss
    return nn.functional.cross_entropy


class _Mixup:
    """Mixup or CutMix as a batch transform plus the matching loss (the transform leaves a note).

    ``transform(x)`` mixes every image with a random partner ``x[perm]`` and remembers
    ``(perm, lam)``: mixup blends the whole images, ``lam * x + (1 - lam) * x[perm]``; CutMix
    (``cut=True``) pastes a box of the partner whose area is about ``1 - lam`` of the image
    (``lam`` is then the exact share of the image's own pixels). The next ``loss(outputs, y)``
    consumes the note and returns ``lam * loss(outputs, y) + (1 - lam) * loss(outputs,
    y[perm])``. Validation batches are never transformed, so their loss stays the plain one.
    """

    def __init__(
        self, alpha: float, loss: Callable[..., Tensor], augment: Callable[[Tensor], Tensor] | None,
        *, seed: int, cut: bool = False,
    ) -> None:  # fmt: skip
        self.alpha, self.base_loss, self.augment = float(alpha), loss, augment
        self.cut = cut
        self.rng = np.random.default_rng(seed)
        self.generator = torch.Generator().manual_seed(seed)
        self.pending: tuple[Tensor, float] | None = None

    def transform(self, x: Tensor) -> Tensor:
        if self.augment is not None:
            x = self.augment(x)
        lam = float(self.rng.beta(self.alpha, self.alpha))
        perm = torch.randperm(x.shape[0], generator=self.generator).to(x.device)
        if not self.cut:
            self.pending = (perm, lam)
            return lam * x + (1.0 - lam) * x[perm]
        # CutMix (Yun et al., ICCV 2019): a box of side sqrt(1 - lam) of the image, centred
        # anywhere, clipped at the border; lam becomes the share of pixels left untouched.
        height, width = x.shape[-2:]
        side = math.sqrt(1.0 - lam)
        cy, cx = int(self.rng.integers(height)), int(self.rng.integers(width))
        half_h, half_w = round(side * height / 2), round(side * width / 2)
        top, bottom = max(cy - half_h, 0), min(cy + half_h, height)
        left, right = max(cx - half_w, 0), min(cx + half_w, width)
        mixed = x.clone()
        mixed[..., top:bottom, left:right] = x[perm][..., top:bottom, left:right]
        self.pending = (perm, 1.0 - (bottom - top) * (right - left) / (height * width))
        return mixed

    def loss(self, outputs: Tensor, target: Tensor) -> Tensor:
        if self.pending is None:
            return self.base_loss(outputs, target)
        perm, lam = self.pending
        self.pending = None
        return lam * self.base_loss(outputs, target) + (1.0 - lam) * self.base_loss(
            outputs, target[perm]
        )


def _batch_prior(targets: Tensor, alpha: float, n_classes: int) -> list[float]:
    # The class mix of the training batches (counts reweighted by the sampler), never the
    # validation or test counts. A class absent from training still needs a positive entry.
    prior = expected_class_distribution(targets, alpha)
    freqs = [1e-6] * n_classes
    freqs[: len(prior)] = prior.clamp(min=1e-6).tolist()
    return freqs


class _DeferredSampler(torch.utils.data.Sampler[int]):
    """Draw from ``early`` for the epochs before ``switch`` and from ``late`` from then on.

    Both samplers see every ``set_epoch`` call, so each keeps its own per-epoch draw; they
    are built on the same labels (and process group), so they have the same length.
    """

    def __init__(self, early: ClassBalancedSampler, late: ClassBalancedSampler, switch: int):
        self.early, self.late, self.switch = early, late, switch
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.early.set_epoch(epoch)
        self.late.set_epoch(epoch)
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        return iter(self.early if self.epoch < self.switch else self.late)

    def __len__(self) -> int:
        return len(self.late)


def _augmentation(
    max_shift: int,
    *,
    seed: int,
    max_rotation: float,
    intensity_jitter: float,
    rotation_interpolation: str,
    channel_dropout: float = 0.0,
    dropout_channels: tuple[int, ...] | None = None,
) -> Callable[[Tensor], Tensor]:
    steps: list[Any] = [RandomDihedral()]
    if max_rotation:
        steps.append(RandomRotation(max_rotation, interpolation=rotation_interpolation))
    if max_shift:
        steps.append(RandomTranslate(max_shift))
    if intensity_jitter:
        j = intensity_jitter
        steps.append(RandomIntensity(scale=(1.0 - j, 1.0 + j), offset=(-j, j)))
    if channel_dropout:
        # Last: the blanked channel stays exactly at its normalised mean, 0.
        steps.append(RandomChannelDrop(channel_dropout, channels=dropout_channels))
    # Draw on a CPU generator: the same augmentation whether batches live on CPU or GPU.
    generator = torch.Generator().manual_seed(seed)
    return functools.partial(Compose(steps, chunk_size=None), generator=generator)


def _resolve_device(device: torch.device | str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be 'auto' or a torch device, got {device!r}") from exc


def _resolve_progress(progress: bool) -> bool:
    if not progress:
        return False
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return _is_main_process()


# --------------------------------------------------------------------------- trained model
_FROM_RECIPE = "recipe"
_AMP_DTYPES: dict[str, torch.dtype | None] = {"none": None, "bf16": torch.bfloat16}


@functools.cache
def _cpu_has_native_bf16() -> bool:
    # oneDNN's own test (AVX-512 or AMX); older torch builds without it: the dispatch level.
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return torch.backends.cpu.get_cpu_capability().startswith("AVX512")


def resolve_amp(mode: str, device: torch.device | str = "cpu") -> torch.dtype | None:
    """The autocast dtype that the ``amp`` mode of a recipe predicts with on ``device``.

    ``"none"`` is float32 (``None``) and ``"bf16"`` always bfloat16; ``"auto"`` is bfloat16
    where the device computes it natively (a CPU for which oneDNN reports bfloat16 support,
    that is AVX-512 or AMX; a CUDA GPU with bf16 support) and float32 elsewhere, where
    emulated bfloat16 would be slower than float32.

    Parameters
    ----------
    mode : {"none", "bf16", "auto"}
        The recipe's ``amp`` field.
    device : torch.device or str, default "cpu"
        Where the forward passes run.

    Returns
    -------
    torch.dtype or None
        ``torch.bfloat16``, or ``None`` for float32.

    Raises
    ------
    ValueError
        If ``mode`` is not one of :data:`AMP_MODES` or ``device`` is not a device.

    Examples
    --------
    >>> resolve_amp("none") is None, resolve_amp("bf16")
    (True, torch.bfloat16)
    >>> resolve_amp("auto") in (torch.bfloat16, None)
    True
    """
    check_choice("mode", mode, AMP_MODES)
    device = _resolve_device(device) if isinstance(device, str) else device
    if not isinstance(device, torch.device):
        raise ValueError(f"device must be a torch device or its name, got {device!r}")
    if mode != "auto":
        return _AMP_DTYPES[mode]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    if device.type == "cpu":
        return torch.bfloat16 if _cpu_has_native_bf16() else None
    return None


_INFERENCE_FIELDS = ("tta", "tta_confidence", "logit_adjust", "amp", "channels_last")


@dataclasses.dataclass
class TrainedClassifier:
    """A trained cell classifier with everything needed to classify new cells.

    Predictions follow the recipe's inference options: ``tta`` (D4 test-time augmentation),
    ``logit_adjust`` (post-hoc adjustment against ``class_prior``), ``amp`` and
    ``channels_last`` (the fast path), and the ensemble of ``n_models`` members whose
    probabilities are averaged. :meth:`with_options` gives a copy that predicts with other
    inference options from the same weights.

    With ``fine_class_names`` (a ``train_labels="release"`` recipe) the network predicts
    those finer classes; ``logit_adjust`` acts on them, and every prediction returns the
    merged ``class_names``: the probabilities of the fine classes summed per merged class.

    Parameters
    ----------
    model : torch.nn.Module
        The network (unwrapped from DDP), returning logits; the first ensemble member.
    history : cellvision.engine.History
        Per-epoch records of the training run (of the first member).
    mean, std : Tensor
        Per-channel normalisation fitted on the training cells.
    class_names : tuple of str
        Name of every predicted class, indexed by label.
    recipe : CellCycleRecipe
        The recipe that trained it (its ``channels`` are the channels to predict on).
    class_prior : tuple of float
        Class mix of the training batches over the network's classes (``fine_class_names``
        when set): the head's initial prior, and the prior that ``logit_adjust`` removes.
    epoch : int
        Epoch of the kept weights (counted from 1).
    extra_members : tuple of torch.nn.Module, default ()
        The other ensemble members (seeds ``seed + 1, ...``), same architecture as ``model``;
        with ``recipe.member_channels`` each takes its own channels (``in_channels``), and
        predictions feed it those channels of the normalised cells.
    fine_class_names : tuple of str or None, default None
        The finer classes the network predicts, when they are not ``class_names``; each
        merges into one of ``class_names`` by :data:`~cellvision.data.INTERPHASE_MERGE`.

    Raises
    ------
    ValueError
        If ``fine_class_names`` do not merge into ``class_names``, or the members' input
        channels are not those of ``recipe.member_channels``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> data = make_synthetic_cells([20, 6, 4, 4, 4], size=24, seed=1)
    >>> trained = train(CellCycleRecipe(epochs=1, width=8, depth=2), data, device="cpu",
    ...                 progress=False)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = trained.save(pathlib.Path(tmp) / "cells.pt")
    ...     again = TrainedClassifier.load(path)
    >>> torch.equal(again.predict_proba(data.images), trained.predict_proba(data.images))
    True
    >>> again.class_names[:2], again.epoch
    (('Interphase', 'Prophase'), 1)
    >>> trained.with_options(tta="d4").predict_proba(data.images).shape
    torch.Size([38, 5])
    """

    model: nn.Module
    history: History
    mean: Tensor
    std: Tensor
    class_names: tuple[str, ...]
    recipe: CellCycleRecipe
    class_prior: tuple[float, ...]
    epoch: int
    extra_members: tuple[nn.Module, ...] = ()
    fine_class_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.fine_class_names is not None:
            merged = _merge_index(self.fine_class_names)[1]
            if merged != tuple(self.class_names):
                raise ValueError(
                    f"fine_class_names must merge into class_names {tuple(self.class_names)!r}, "
                    f"got {self.fine_class_names!r} (merging to {merged!r})"
                )
        if self.recipe.member_channels:
            seen = [getattr(getattr(m, "config", None), "in_channels", None) for m in self.members]
            wanted = [len(inputs) for inputs in self.recipe.member_inputs]
            if seen != wanted:
                raise ValueError(
                    f"the members must be the {len(wanted)} of recipe.member_channels "
                    f"{self.recipe.member_channels!r}, taking {wanted} input channels, got "
                    f"{len(seen)} members taking {seen}"
                )
        if self.recipe.channels_last:
            # Convert the weights once; the values are unchanged.
            for member in self.members:
                member.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    @property
    def members(self) -> tuple[nn.Module, ...]:
        """Every ensemble member, ``model`` first."""
        return (self.model, *self.extra_members)

    def _member_networks(self) -> list[nn.Module]:
        # Each member on its channels (recipe.member_channels) of the normalised cells.
        if not self.recipe.member_channels:
            return list(self.members)
        everything = tuple(range(len(self.channels)))
        return [
            member if inputs == everything else _SelectChannels(member, inputs)
            for member, inputs in zip(self.members, self.recipe.member_inputs, strict=True)
        ]

    @property
    def network_class_names(self) -> tuple[str, ...]:
        """The classes the network itself predicts: ``fine_class_names`` or ``class_names``."""
        return self.class_names if self.fine_class_names is None else self.fine_class_names

    @property
    def channels(self) -> tuple[str, ...]:
        """The image channels the classifier was trained on (``recipe.channels``)."""
        return self.recipe.channels

    @property
    def normalize(self) -> Normalize:
        """The input normalisation (fitted on the training cells)."""
        return Normalize(self.mean.float(), self.std.float().clamp(min=1e-6))

    @property
    def image_size(self) -> int:
        """Side of the square images the model expects (its config's ``img_size``)."""
        size = getattr(getattr(self.model, "config", None), "img_size", None)
        if not isinstance(size, int):
            raise ValueError(f"model must have a config with an int img_size, got {size!r}")
        return size

    def with_options(self, **options: Any) -> TrainedClassifier:
        """A copy that predicts with other inference options, sharing the weights.

        Parameters
        ----------
        **options
            New values of the recipe's inference fields ``tta``, ``tta_confidence``,
            ``logit_adjust``, ``amp`` and ``channels_last``.

        Returns
        -------
        TrainedClassifier
            The copy (no retraining; the models are the same objects).

        Raises
        ------
        ValueError
            If an option is not an inference field or its value is invalid (for example
            ``logit_adjust`` with a loss that already adjusts).
        """
        unknown = sorted(set(options) - set(_INFERENCE_FIELDS))
        if unknown:
            raise ValueError(
                f"options must be inference fields {_INFERENCE_FIELDS}, got {unknown!r}"
            )
        return dataclasses.replace(self, recipe=self.recipe.replace(**options))

    def _images(self, images: Tensor | np.ndarray[Any, Any] | CellImageDataset) -> Tensor:
        if isinstance(images, CellImageDataset):
            images = images.images
        if isinstance(images, np.ndarray):
            images = torch.from_numpy(np.ascontiguousarray(images))
        if not isinstance(images, Tensor):
            raise TypeError(
                f"images must be a Tensor, numpy array or CellImageDataset, got {images!r}"
            )
        if images.ndim == 3:
            images = images.unsqueeze(1)
        expected = self.mean.numel()
        if (
            images.ndim == 4
            and images.shape[1] == expected + 1
            and self.recipe.auxiliary_channel is not None
        ):
            images = images[:, :expected]  # the training-only auxiliary channel, not an input
        if images.ndim != 4 or images.shape[1] != expected:
            raise ValueError(
                f"images must have shape (N, {expected}, H, W), got {tuple(images.shape)!r}"
            )
        return images

    def logits(
        self,
        images: Tensor | np.ndarray[Any, Any] | CellImageDataset,
        *,
        batch_size: int = _EVAL_BATCH,
        device: torch.device | str | None = None,
        amp_dtype: torch.dtype | str | None = _FROM_RECIPE,
        channels_last: bool | None = None,
    ) -> Tensor:
        """Class scores of ``images`` (normalised as in training), float32 on the CPU.

        This is the single inference path: :meth:`predict_proba`, :meth:`predict`,
        :func:`evaluate` and :func:`cross_validate` build on it. A single softmax model
        without test-time augmentation returns its logits; otherwise (``tta="d4"``, an
        ensemble, or ``loss="one_vs_all"``) the scores are the log of the mean predicted
        probabilities (views and members averaged), so their softmax is that mean. With
        ``logit_adjust`` the scores are then
        ``adjust_logits(scores, class_prior, tau=logit_adjust)``. With ``fine_class_names``
        all of this happens on the fine classes, and the result is the log of the merged
        probabilities (the softmax of the fine scores summed per merged class). With
        ``tta_confidence`` below 1, the cells whose single-view scores are confident keep
        those, and the others get the scores of the 8 views.

        Parameters
        ----------
        images : Tensor, numpy.ndarray or CellImageDataset
            ``(N, C, H, W)`` (or ``(N, H, W)``) raw images: ``uint8``/``uint16`` or float in
            ``[0, 1]``, as the training cells were.
        batch_size : int, default 256
            Cells per forward pass (times 8 views with ``tta="d4"``).
        device : torch.device or str, optional
            Defaults to the model's device.
        amp_dtype : torch.dtype or None, default: the recipe's ``amp``
            Forward under autocast with this dtype (``torch.bfloat16``); ``None`` is float32.
        channels_last : bool, optional
            Feed the batches in ``channels_last`` memory format; default: the recipe's.

        Returns
        -------
        Tensor
            ``(N, len(class_names))`` scores.

        Raises
        ------
        TypeError, ValueError
            If the images have the wrong type or shape.
        """
        check_positive_int("batch_size", batch_size)
        x = self._images(images)
        recipe = self.recipe
        amp: torch.dtype | None
        if amp_dtype == _FROM_RECIPE:
            where = (
                torch.device(device) if device is not None else next(self.model.parameters()).device
            )
            amp = resolve_amp(recipe.amp, where)
        elif amp_dtype is None or isinstance(amp_dtype, torch.dtype):
            amp = amp_dtype
        else:
            raise TypeError(f"amp_dtype must be a torch.dtype or None, got {amp_dtype!r}")
        last = recipe.channels_last if channels_last is None else bool(channels_last)
        if recipe.tta != "none" and recipe.tta_confidence < 1.0:
            # The confidence gate: one view for every cell, then the views for the cells whose
            # single-view prediction is not confident enough.
            scores = self.with_options(tta="none").logits(
                x, batch_size=batch_size, device=device, amp_dtype=amp, channels_last=last
            )
            top = scores.softmax(dim=1).amax(dim=1)
            unsure = torch.nonzero(top <= recipe.tta_confidence).flatten()
            if unsure.numel():
                scores[unsure] = self.with_options(tta_confidence=1.0).logits(
                    x[unsure],
                    batch_size=batch_size,
                    device=device,
                    amp_dtype=amp,
                    channels_last=last,
                )
            return scores
        one_vs_all = recipe.loss == "one_vs_all"
        batches = _NormalizedBatches(x, None, self.normalize, batch_size)
        if len(self.members) == 1 and recipe.tta == "none" and not one_vs_all:
            scores = predict_outputs(
                self.model, batches, device=device, amp_dtype=amp, channels_last=last
            )
        else:
            to_proba = one_vs_all_probabilities if one_vs_all else None
            total = torch.zeros(x.shape[0], len(self.network_class_names))
            for member in self._member_networks():
                if recipe.tta == "none":
                    raw = predict_outputs(
                        member, batches, device=device, amp_dtype=amp, channels_last=last
                    )
                    total += raw.softmax(dim=1) if to_proba is None else to_proba(raw)
                    continue
                dev = device if device is not None else next(member.parameters()).device
                parts = [
                    predict_tta(
                        member,
                        batch.to(dev),
                        recipe.tta,  # type: ignore[arg-type]
                        amp_dtype=amp,
                        channels_last=last,
                        to_probabilities=to_proba,
                    ).cpu()
                    for batch in batches
                    if isinstance(batch, Tensor)
                ]
                total += torch.cat(parts)
            tiny = torch.finfo(torch.float32).tiny
            scores = (total / len(self.members)).clamp(min=tiny).log()
        if recipe.logit_adjust:
            scores = adjust_logits(scores, list(self.class_prior), tau=recipe.logit_adjust)
        if self.fine_class_names is not None:
            # Sum the fine probabilities per merged class (G1 + S + G2 -> Interphase).
            index = _merge_index(self.fine_class_names)[0]
            merged = torch.zeros(scores.shape[0], len(self.class_names))
            merged.index_add_(1, index, scores.float().softmax(dim=1))
            scores = merged.clamp(min=torch.finfo(torch.float32).tiny).log()
        return scores

    def predict_proba(
        self,
        images: Tensor | np.ndarray[Any, Any] | CellImageDataset,
        *,
        batch_size: int = _EVAL_BATCH,
        device: torch.device | str | None = None,
        amp_dtype: torch.dtype | str | None = _FROM_RECIPE,
        channels_last: bool | None = None,
    ) -> Tensor:
        """Class probabilities of ``images``: softmax of :meth:`logits` (same arguments).

        Returns
        -------
        Tensor
            ``(N, n_classes)`` float32 probabilities; rows sum to 1.
        """
        logits = self.logits(
            images,
            batch_size=batch_size,
            device=device,
            amp_dtype=amp_dtype,
            channels_last=channels_last,
        )
        return torch.softmax(logits, dim=-1)

    def predict(
        self,
        images: Tensor | np.ndarray[Any, Any] | CellImageDataset,
        *,
        batch_size: int = _EVAL_BATCH,
        device: torch.device | str | None = None,
        amp_dtype: torch.dtype | str | None = _FROM_RECIPE,
        channels_last: bool | None = None,
    ) -> Tensor:
        """Predicted class index of every image (argmax of :meth:`logits`, same arguments).

        Returns
        -------
        Tensor
            ``(N,)`` int64 labels; ``class_names[label]`` names them.
        """
        return self.logits(
            images,
            batch_size=batch_size,
            device=device,
            amp_dtype=amp_dtype,
            channels_last=channels_last,
        ).argmax(dim=-1)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write one safe checkpoint (:func:`cellvision.checkpoint.save_checkpoint`).

        It holds the model config and weights (and those of the other ensemble members), the
        normalisation, the channels, the class names (and fine class names), the class prior,
        the recipe and the history; :meth:`load` needs nothing else.

        Parameters
        ----------
        path : str or os.PathLike
            Destination file; its directory must exist.

        Returns
        -------
        pathlib.Path
            The written path.

        Raises
        ------
        ValueError
            If the model is not a registered model (e.g. the raw-pixel baseline).
        """
        extra = {
            "kind": "cellvision.recipes.cellcycle.TrainedClassifier",
            "class_names": list(self.class_names),
            "fine_class_names": (
                None if self.fine_class_names is None else list(self.fine_class_names)
            ),
            "channels": list(self.channels),
            "mean": self.mean.double().tolist(),
            "std": self.std.double().tolist(),
            "class_prior": list(self.class_prior),
            "recipe": self.recipe.to_dict(),
            "history": self.history.to_dict(),
            "members": [
                {k: v.detach().cpu().contiguous() for k, v in m.state_dict().items()}
                for m in self.extra_members
            ],
        }
        return save_checkpoint(path, self.model, epoch=self.epoch, extra=extra)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], *, map_location: torch.device | str = "cpu"
    ) -> TrainedClassifier:
        """Read a checkpoint written by :meth:`save` (safe loading, no pickled code).

        Parameters
        ----------
        path : str or os.PathLike
            The checkpoint.
        map_location : torch.device or str, default "cpu"
            Where the weights go.

        Returns
        -------
        TrainedClassifier
            The classifier, in eval mode (converted to ``channels_last`` when its recipe
            predicts that way).

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        ValueError
            If the file is not a checkpoint of a trained cell classifier.
        """
        checkpoint = load_checkpoint(path, map_location=map_location)
        extra = checkpoint.extra
        if not (isinstance(extra, dict) and extra.get("kind") == "cellvision.recipes."
                "cellcycle.TrainedClassifier"):  # fmt: skip
            raise ValueError(
                f"path must be a checkpoint written by TrainedClassifier.save, got {str(path)!r}"
            )
        recipe = CellCycleRecipe.from_dict(extra["recipe"])
        model = checkpoint.model.eval()
        states = extra.get("members", [])
        if not isinstance(states, list) or len(states) + 1 != recipe.n_models:
            raise ValueError(
                f"path must hold {recipe.n_models} ensemble member(s) as its recipe says, got "
                f"{str(path)!r} with {len(states) + 1 if isinstance(states, list) else states!r}"
            )
        fine = extra.get("fine_class_names")  # absent from older checkpoints
        members = []
        for k, state in enumerate(states, start=1):
            config: Any = model.config
            if recipe.member_channels:  # this member's own channels
                config = config.replace(in_channels=len(recipe.member_channels[k]))
            member = type(model)(config)
            member.load_state_dict(state, strict=True)
            members.append(member.to(next(model.parameters()).device).eval())
        return cls(
            model=model,
            history=History.from_dict(extra["history"]),
            mean=torch.tensor(extra["mean"], dtype=torch.float64),
            std=torch.tensor(extra["std"], dtype=torch.float64),
            class_names=tuple(extra["class_names"]),
            recipe=recipe,
            class_prior=tuple(float(p) for p in extra["class_prior"]),
            epoch=int(checkpoint.epoch or 0),
            extra_members=tuple(members),
            fine_class_names=None if fine is None else tuple(str(n) for n in fine),
        )


# --------------------------------------------------------------------------- training
def _fit_classifier(
    recipe: CellCycleRecipe,
    make_model: Callable[[list[float], int], nn.Module],
    train_data: CellImageDataset,
    val_data: CellImageDataset | None,
    *,
    epochs: int,
    augment: bool,
    device: torch.device | str,
    progress: bool,
    on_epoch: Callable[[History], object] | None,
    merge_fine: bool = False,
    auxiliary: bool = False,
) -> TrainedClassifier:
    # merge_fine: the network learns train_data's classes and the classifier predicts their
    # merged classes (train_labels="release"). auxiliary: the last channel of the cells is
    # recipe.auxiliary_channel, a training target of the network (train) rather than an input.
    if not isinstance(train_data, CellImageDataset):
        raise TypeError(f"train_data must be a CellImageDataset, got {type(train_data).__name__}")
    if val_data is not None and not isinstance(val_data, CellImageDataset):
        raise TypeError(f"val_data must be a CellImageDataset, got {type(val_data).__name__}")
    dev = _resolve_device(device)
    names = train_data.class_names
    # Normalisation statistics from the training cells only (the auxiliary target's too).
    mean, std = channel_stats(train_data.images)
    normalize = Normalize(mean.float(), std.float().clamp(min=1e-6))
    prior = _batch_prior(train_data.targets, recipe.alpha, len(names))
    val_loader = None
    if val_data is not None:
        part = torch.from_numpy(_shard(len(val_data)))
        val_loader = _NormalizedBatches(
            val_data.images[part], val_data.targets[part], normalize, _EVAL_BATCH
        )
    train_set = CellImageDataset(train_data.images, train_data.targets, names, transform=normalize)
    select_best = recipe.select == "best" and val_loader is not None

    n_inputs = len(recipe.channels) if auxiliary else len(mean)
    everything = tuple(range(n_inputs))
    # Without member_channels every member sees every input (the cells' channels, which
    # recipe.member_inputs cannot know when they are not recipe.channels).
    member_inputs = (
        recipe.member_inputs if recipe.member_channels else (everything,) * recipe.n_models
    )

    def fit_member(seed: int, inputs: tuple[int, ...]) -> tuple[nn.Module, History, int]:
        # inputs: the member's channels (indices into recipe.channels)
        torch.manual_seed(seed)
        model = make_model(prior, len(inputs))
        if auxiliary:
            model = _AuxiliaryChannelNet(model, None if inputs == everything else inputs)
        elif inputs != everything:
            model = _SelectChannels(model, inputs)
        droppable = _droppable_channels(recipe, inputs, everything, auxiliary=auxiliary)
        model = model.to(dev)
        net: nn.Module = model
        if dist.is_available() and dist.is_initialized():
            net = nn.parallel.DistributedDataParallel(
                model, device_ids=[dev.index] if dev.type == "cuda" else None
            )
        # The sampler shards itself under a process group and gives every rank the same
        # number of indices, so the ranks run the same number of steps.
        late = ClassBalancedSampler(train_set.targets, alpha=recipe.alpha, seed=seed)
        sampler: ClassBalancedSampler | _DeferredSampler = late
        if recipe.defer_epochs:
            early = ClassBalancedSampler(train_set.targets, alpha=recipe.early_alpha, seed=seed)
            sampler = _DeferredSampler(early, late, recipe.defer_epochs)
        train_loader = DataLoader(train_set, batch_size=recipe.batch_size, sampler=sampler)
        groups = (
            model.parameters() if recipe.decay_all else param_groups(model, recipe.weight_decay)
        )
        optimizer = torch.optim.AdamW(groups, lr=recipe.lr, weight_decay=recipe.weight_decay)
        average = WeightEMA(model, recipe.ema) if recipe.ema else None
        if average is not None:
            average.attach(optimizer, model)
        scheduler = (
            warmup_cosine(optimizer, epochs * len(train_loader), recipe.warmup_fraction)
            if recipe.schedule == "warmup_cosine"
            else None
        )
        transform = (
            _augmentation(
                recipe.max_shift,
                seed=seed,
                max_rotation=recipe.max_rotation,
                rotation_interpolation=recipe.rotation_interpolation,
                intensity_jitter=recipe.intensity_jitter,
                channel_dropout=recipe.channel_dropout if droppable != () else 0.0,
                dropout_channels=droppable,
            )
            if augment
            else None
        )
        loss_fn = _training_loss(recipe, prior)
        if isinstance(model, _AuxiliaryChannelNet):
            loss_fn = _add_auxiliary_loss(loss_fn, model, recipe.auxiliary_weight)
        if recipe.mixup or recipe.cutmix:
            cut = bool(recipe.cutmix)
            mixup = _Mixup(recipe.cutmix or recipe.mixup, loss_fn, transform, seed=seed, cut=cut)
            transform, loss_fn = mixup.transform, mixup.loss
        history = fit(
            net,
            train_loader,
            optimizer,
            epochs=epochs,
            val_loader=val_loader,
            loss_fn=loss_fn,
            metrics=(
                _MergedClassMetrics(names)
                if merge_fine
                else BalancedClassificationMetrics(len(names), class_names=names)
            ),
            device=dev,
            batch_transform=transform,
            scheduler=scheduler,
            monitor="val_balanced_accuracy" if val_loader is not None else None,
            mode="max" if val_loader is not None else "min",
            restore_best=select_best,
            progress=_resolve_progress(progress),
            on_epoch_end=on_epoch,
        )
        kept = history.best_epoch() if select_best else int(history[-1]["epoch"])
        if average is not None:
            # The average is what the classifier predicts with (trainable again, for
            # fine-tuning and Grad-CAM).
            model = average.module.requires_grad_(True)
        if isinstance(model, (_AuxiliaryChannelNet, _SelectChannels)):
            # The decoder only served the training; the classifier selects the channels.
            model = model.network
        return model.eval(), history, kept

    # The ensemble: members differ in their seed (weights, sampler draw, augmentation) and,
    # with member_channels, in the channels they see.
    fitted = [fit_member(recipe.seed + k, inputs) for k, inputs in enumerate(member_inputs)]
    (model, history, kept), others = fitted[0], fitted[1:]
    merged_names = _merge_index(names)[1] if merge_fine else tuple(names)
    return TrainedClassifier(
        model=model,
        history=history,
        mean=mean[:n_inputs].double(),
        std=std[:n_inputs].double(),
        class_names=merged_names,
        recipe=recipe,
        class_prior=tuple(prior),
        epoch=kept,
        extra_members=tuple(member for member, _, _ in others),
        fine_class_names=tuple(names) if merged_names != tuple(names) else None,
    )


def train(
    recipe: CellCycleRecipe,
    train_data: CellImageDataset,
    val_data: CellImageDataset | None = None,
    *,
    device: torch.device | str = "auto",
    progress: bool = True,
    on_epoch: Callable[[History], object] | None = None,
) -> TrainedClassifier:
    """Train the recipe's model on ``train_data`` (see the module description).

    The cells may carry the merged classes or the seven release classes
    (``load_data(..., release_labels=True)``). With ``recipe.train_labels="merged"`` release
    classes are merged first; with ``"release"`` the network learns the classes as given
    and the classifier predicts the merged ones (the validation loss is on the finer
    classes; the ``val_*`` metrics, and so ``select="best"``, on the merged ones).

    Under an initialised :mod:`torch.distributed` process group the model is wrapped in
    :class:`~torch.nn.parallel.DistributedDataParallel`, the sampler shards the training
    draw and the validation cells are split between the ranks (the engine synchronises the
    metrics), so every rank gets the same history.

    Parameters
    ----------
    recipe : CellCycleRecipe
        The settings.
    train_data : CellImageDataset
        Training cells (raw images; the normalisation is fitted on them).
    val_data : CellImageDataset, optional
        Validation cells, evaluated every epoch (``val_*`` history keys); needed for
        ``select="best"`` (without them the last epoch is kept). Same classes as
        ``train_data``.
    device : torch.device or str, default "auto"
        ``"auto"`` picks CUDA when available, else the CPU.
    progress : bool, default True
        Progress bars over batches when tqdm is installed (and this is rank 0).
    on_epoch : callable, optional
        Called as ``on_epoch(history)`` after every epoch (logging, pruning).

    Returns
    -------
    TrainedClassifier
        The model with its history, normalisation, class names and recipe.

    Raises
    ------
    TypeError
        If the data are not :class:`~cellvision.data.CellImageDataset` objects.
    ValueError
        If ``device`` is invalid or ``val_data`` has other classes than ``train_data``.

    Examples
    --------
    >>> data = make_synthetic_cells([30, 10, 6, 6, 6], size=24, seed=0)
    >>> train_idx, val_idx = stratified_split(data.targets, 0.25, seed=0)
    >>> seen = []
    >>> trained = train(CellCycleRecipe(epochs=2, width=8, depth=2), subset(data, train_idx),
    ...                 subset(data, val_idx), device="cpu", progress=False,
    ...                 on_epoch=lambda history: seen.append(history[-1]["epoch"]))
    >>> seen, trained.epoch, "val_balanced_accuracy" in trained.history[-1]
    ([1, 2], 2, True)

    Training on the release classes, predicting the merged ones:

    >>> cells = load_data(release_labels=True)[0]
    >>> part = subset(cells, stratified_split(cells.targets, 0.2, seed=0)[1])
    >>> fine = train(CellCycleRecipe(epochs=1, width=8, depth=2, train_labels="release"),
    ...              part, device="cpu", progress=False)
    >>> fine.fine_class_names[:3], fine.class_names[0], fine.predict_proba(part).shape
    (('G1', 'S', 'G2'), 'Interphase', torch.Size([205, 5]))
    """
    if not isinstance(train_data, CellImageDataset):
        raise TypeError(f"train_data must be a CellImageDataset, got {type(train_data).__name__}")
    release = recipe.train_labels == "release"
    if not release:
        train_data = _merged(train_data)
        if isinstance(val_data, CellImageDataset):
            val_data = _merged(val_data)
    if isinstance(val_data, CellImageDataset) and val_data.class_names != train_data.class_names:
        raise ValueError(
            f"val_data.class_names must be train_data's {train_data.class_names!r}, got "
            f"{val_data.class_names!r}"
        )
    n_channels, img_size = int(train_data.images.shape[1]), int(train_data.images.shape[-1])
    if recipe.auxiliary_channel is not None:
        # The last channel is the auxiliary target: check that it is there.
        for part in (train_data, val_data):
            if part is not None:
                _input_channels(recipe, part)
        n_channels = len(recipe.channels)
    if recipe.member_channels and n_channels != len(recipe.channels):
        raise ValueError(
            f"train_data must hold the recipe's channels {recipe.channels!r} (member_channels "
            f"selects among them), got {n_channels} input channels"
        )

    def make_model(prior: list[float], in_channels: int) -> nn.Module:
        return build_model(
            recipe,
            n_classes=len(train_data.class_names),
            in_channels=in_channels,
            img_size=img_size,
            class_freqs=prior,
        )

    return _fit_classifier(
        recipe,
        make_model,
        train_data,
        val_data,
        epochs=recipe.epochs,
        augment=recipe.augment,
        device=device,
        progress=progress,
        on_epoch=on_epoch,
        merge_fine=release,
        auxiliary=recipe.auxiliary_channel is not None,
    )


def train_pixel_baseline(
    recipe: CellCycleRecipe,
    train_data: CellImageDataset,
    val_data: CellImageDataset | None = None,
    *,
    device: torch.device | str = "auto",
    progress: bool = True,
    on_epoch: Callable[[History], object] | None = None,
) -> TrainedClassifier:
    """Train :class:`RawPixelLinear` with the recipe's sampler, optimizer and schedule.

    The baseline the network has to beat: ``recipe.baseline_epochs`` epochs, no augmentation
    (a linear model has no invariance to learn rotated or shifted copies into; they only blur
    its templates), plain cross-entropy, one model and no inference options, on the merged
    classes (release classes are merged first). Arguments as :func:`train`. Its
    :meth:`TrainedClassifier.save` raises ``ValueError`` (the baseline is not a registered
    model).

    Returns
    -------
    TrainedClassifier
        The trained baseline.

    Raises
    ------
    ValueError
        If ``recipe.baseline_epochs`` is 0.

    Examples
    --------
    >>> data = make_synthetic_cells([20, 6, 4, 4, 4], size=16, seed=0)
    >>> baseline = train_pixel_baseline(CellCycleRecipe(baseline_epochs=1), data, device="cpu",
    ...                                 progress=False)
    >>> type(baseline.model).__name__, baseline.epoch
    ('RawPixelLinear', 1)
    """
    if recipe.baseline_epochs == 0:
        raise ValueError("recipe.baseline_epochs must be positive to train the baseline, got 0")
    # The baseline is plain multinomial logistic regression: one model, cross-entropy, and
    # no inference options (it is the reference the recipe's levers are measured against).
    # It never sees an auxiliary channel (an input it would be, not a target); its
    # classifier ignores that channel where it is given, like the network's.
    train_data = _merged(_input_channels(recipe, train_data))
    val_data = None if val_data is None else _merged(_input_channels(recipe, val_data))
    recipe = recipe.replace(
        loss="cross_entropy", logit_adjust=0.0, tta="none", amp="none", channels_last=False,
        mixup=0.0, n_models=1, member_channels=(), train_labels="merged",
    )  # fmt: skip
    n_pixels = int(np.prod(train_data.images.shape[1:]))
    n_classes = len(train_data.class_names)
    return _fit_classifier(
        recipe,
        lambda prior, _: RawPixelLinear(n_pixels, n_classes, prior),
        train_data,
        val_data,
        epochs=recipe.baseline_epochs,
        augment=False,
        device=device,
        progress=progress,
        on_epoch=on_epoch,
    )


def evaluate(
    trained: TrainedClassifier, data: CellImageDataset, *, batch_size: int = _EVAL_BATCH
) -> ClassificationReport:
    """The balanced classification report of ``trained`` on labelled ``data``.

    Under an initialised process group every rank evaluates its share of the cells and the
    report covers all of them.

    Parameters
    ----------
    trained : TrainedClassifier
        The classifier.
    data : CellImageDataset
        Labelled cells with the classifier's class names, or release classes that merge into
        them (they are merged first).
    batch_size : int, default 256
        Cells per forward pass.

    Returns
    -------
    cellvision.metrics.ClassificationReport
        Balanced accuracy, macro F1, Cohen's kappa, ROC AUC, per-class values, confusion.

    Raises
    ------
    TypeError
        If ``data`` is not a :class:`~cellvision.data.CellImageDataset`.
    ValueError
        If the class names differ from the classifier's.

    Examples
    --------
    >>> data = make_synthetic_cells([20, 6, 4, 4, 4], size=16, seed=0)
    >>> trained = train(CellCycleRecipe(epochs=1, width=8, depth=2), data, device="cpu",
    ...                 progress=False)
    >>> report = evaluate(trained, data)
    >>> int(report.confusion_matrix.sum()), 0.0 <= report.balanced_accuracy <= 1.0
    (38, True)
    """
    if not isinstance(data, CellImageDataset):
        raise TypeError(f"data must be a CellImageDataset, got {type(data).__name__}")
    if tuple(data.class_names) != trained.class_names:
        data = _merged(data)
    if tuple(data.class_names) != trained.class_names:
        raise ValueError(
            f"data.class_names must be the classifier's {trained.class_names!r}, "
            f"got {tuple(data.class_names)!r}"
        )
    check_positive_int("batch_size", batch_size)
    part = torch.from_numpy(_shard(len(data)))
    # The classifier's own inference path (test-time augmentation, ensemble, adjustment).
    logits = trained.logits(data.images[part], batch_size=batch_size)
    metric = BalancedClassificationMetrics(len(trained.class_names), class_names=data.class_names)
    metric.update(logits, data.targets[part])
    if dist.is_available() and dist.is_initialized():
        from torcheval.metrics.toolkit import sync_and_compute

        report: ClassificationReport = sync_and_compute(metric)
        return report
    return metric.compute()


def _report_from_logits(
    logits: Tensor, targets: Tensor, class_names: Sequence[str]
) -> ClassificationReport:
    metric = BalancedClassificationMetrics(len(class_names), class_names=class_names)
    return metric.update(logits, targets).compute()


# --------------------------------------------------------------------------- cross-validation
@dataclasses.dataclass
class CrossValidationResult:
    """What :func:`cross_validate` returns (see its example).

    Attributes
    ----------
    fold_reports : list of ClassificationReport
        One report per fold, on the fold's held-out cells.
    pooled : ClassificationReport
        One report over every cell's out-of-fold prediction.
    oof_proba : Tensor
        ``(N, n_classes)`` out-of-fold probabilities of the merged classes (each cell
        predicted by the model that did not train on it).
    fold_of : numpy.ndarray
        The fold that held out each cell.
    table : dict of str to (float, float)
        Mean and sample standard deviation over the folds of every metric of
        :data:`TABLE_METRICS` (NaN folds skipped).
    classifiers : list of TrainedClassifier
        The classifier of every fold, kept with ``cross_validate(..., keep_classifiers=True)``
        (empty otherwise); :meth:`with_options` re-evaluates them.
    """

    fold_reports: list[ClassificationReport]
    pooled: ClassificationReport
    oof_proba: Tensor
    fold_of: np.ndarray[Any, np.dtype[np.int64]]
    table: dict[str, tuple[float, float]]
    classifiers: list[TrainedClassifier] = dataclasses.field(default_factory=list)

    def with_options(self, data: CellImageDataset, **options: Any) -> CrossValidationResult:
        """The same folds and trained classifiers, evaluated with other inference options.

        Nothing is retrained: every fold's classifier gets
        :meth:`TrainedClassifier.with_options` and predicts its own held-out cells again, so
        test-time augmentation or post-hoc adjustment is compared on the same weights.

        Parameters
        ----------
        data : CellImageDataset
            The cells given to :func:`cross_validate`.
        **options
            Inference fields (``tta``, ``logit_adjust``, ``amp``, ``channels_last``).

        Returns
        -------
        CrossValidationResult
            The re-evaluated result (it keeps the changed classifiers).

        Raises
        ------
        ValueError
            If the classifiers were not kept, ``data`` does not match the folds or an option
            is invalid.

        Examples
        --------
        >>> data = make_synthetic_cells([24, 8, 6, 6, 6], size=24, seed=0)
        >>> result = cross_validate(CellCycleRecipe(epochs=1, width=8, depth=2), data,
        ...                         n_splits=3, device="cpu", keep_classifiers=True)
        >>> tta = result.with_options(data, tta="d4")
        >>> tta.classifiers[0].recipe.tta, tta.fold_of.tolist() == result.fold_of.tolist()
        ('d4', True)
        """
        if not self.classifiers:
            raise ValueError(
                "classifiers must be kept to re-evaluate: call cross_validate(..., "
                "keep_classifiers=True), got none"
            )
        if len(data) != len(self.fold_of):
            raise ValueError(
                f"data must be the {len(self.fold_of)} cells of the cross-validation, got "
                f"{len(data)}"
            )
        changed = [c.with_options(**options) for c in self.classifiers]
        folds = [np.flatnonzero(self.fold_of == k) for k in range(len(changed))]
        return _collect_folds(_merged(data), changed, folds, keep_classifiers=True)

    def format_table(self) -> str:
        """The mean/sd table and the pooled row as text.

        Returns
        -------
        str
            One row per fold, ``mean``, ``sd`` and ``pooled``.
        """
        header = f"{'fold':8s} " + " ".join(f"{s:>8s}" for _, s in TABLE_METRICS)
        lines = [header, "-" * len(header)]
        for k, report in enumerate(self.fold_reports):
            cells = " ".join(f"{_fmt(getattr(report, key)):>8s}" for key, _ in TABLE_METRICS)
            lines.append(f"{k + 1:<8d} {cells}")
        for label, at in (("mean", 0), ("sd", 1)):
            cells = " ".join(f"{_fmt(self.table[key][at]):>8s}" for key, _ in TABLE_METRICS)
            lines.append(f"{label:8s} {cells}")
        cells = " ".join(f"{_fmt(getattr(self.pooled, key)):>8s}" for key, _ in TABLE_METRICS)
        lines.append(f"{'pooled':8s} {cells}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready results (reports, fold of every cell, mean/sd table).

        Returns
        -------
        dict
            ``folds``, ``pooled``, ``fold_of``, ``table`` and ``oof_proba``.
        """
        return {
            "folds": [r.to_dict() for r in self.fold_reports],
            "pooled": self.pooled.to_dict(),
            "fold_of": self.fold_of.tolist(),
            "table": {k: {"mean": _json(m), "sd": _json(s)} for k, (m, s) in self.table.items()},
            "oof_proba": self.oof_proba.tolist(),
        }


def cross_validate(
    recipe: CellCycleRecipe,
    data: CellImageDataset,
    n_splits: int = 5,
    seed: int = 0,
    *,
    device: torch.device | str = "auto",
    progress: bool = False,
    on_fold: Callable[[int, ClassificationReport], object] | None = None,
    keep_classifiers: bool = False,
) -> CrossValidationResult:
    """Stratified k-fold cross-validation of the recipe.

    Every fold trains :func:`train` on the other folds (with ``select="best"`` a stratified
    validation split of them, ``recipe.val_fraction``, chooses the epoch; otherwise the last
    epoch is kept) and predicts its held-out cells. The folds come from
    :class:`~cellvision.splits.StratifiedKFoldSplitter`, stratified on the merged classes,
    so they are the same for both ``train_labels`` settings; the reports and out-of-fold
    probabilities are on the merged classes too.

    Parameters
    ----------
    recipe : CellCycleRecipe
        The settings of every fold.
    data : CellImageDataset
        All labelled cells: merged classes, or the release classes
        (``load_data(..., release_labels=True)``) that ``train_labels="release"`` learns.
    n_splits : int, default 5
        Number of folds.
    seed : int, default 0
        Seed of the folds (the recipe's seed drives the training).
    device, progress
        As in :func:`train`.
    on_fold : callable, optional
        Called as ``on_fold(fold, report)`` after each fold (fold counted from 1).
    keep_classifiers : bool, default False
        Keep every fold's :class:`TrainedClassifier` in the result, so that
        :meth:`CrossValidationResult.with_options` can evaluate other inference options
        (test-time augmentation, post-hoc adjustment) without retraining.

    Returns
    -------
    CrossValidationResult
        Per-fold reports, pooled out-of-fold report, out-of-fold probabilities, mean/sd table.

    Raises
    ------
    TypeError, ValueError
        If the data or ``n_splits`` are invalid.

    Examples
    --------
    >>> data = make_synthetic_cells([24, 8, 6, 6, 6], size=24, seed=0)
    >>> result = cross_validate(CellCycleRecipe(epochs=1, width=8, depth=2), data,
    ...                         n_splits=3, device="cpu")
    >>> len(result.fold_reports), tuple(result.oof_proba.shape)
    (3, (50, 5))
    """
    if not isinstance(data, CellImageDataset):
        raise TypeError(f"data must be a CellImageDataset, got {type(data).__name__}")
    merged = _merged(data)
    splitter = StratifiedKFoldSplitter(n_splits, seed=seed)
    classifiers: list[TrainedClassifier] = []
    folds: list[np.ndarray[Any, Any]] = []
    predicted: list[Tensor] = []
    for k, (train_idx, test_idx) in enumerate(splitter.split(merged.images, merged.targets)):
        val = None
        if recipe.select == "best":
            inner_train, inner_val = stratified_split(
                merged.targets[torch.from_numpy(train_idx)], recipe.val_fraction, seed=seed + k
            )
            train_idx, val = train_idx[inner_train], subset(data, train_idx[inner_val])
        trained = train(recipe, subset(data, train_idx), val, device=device, progress=progress)
        classifiers.append(trained)
        folds.append(test_idx)
        predicted.append(trained.logits(data.images[torch.from_numpy(test_idx)]))
        if on_fold is not None:
            names = merged.class_names
            on_fold(k + 1, _report_from_logits(predicted[-1], merged.targets[test_idx], names))
    return _collect_folds(
        merged, classifiers, folds, keep_classifiers=keep_classifiers, fold_logits=predicted
    )


def _fold_table(reports: Sequence[ClassificationReport]) -> dict[str, tuple[float, float]]:
    """Mean and sd over the folds of each :data:`TABLE_METRICS` entry (undefined folds left out)."""
    table: dict[str, tuple[float, float]] = {}
    for key, _ in TABLE_METRICS:
        values = np.array([float(getattr(r, key)) for r in reports], dtype=np.float64)
        finite = values[np.isfinite(values)]
        mean = float(finite.mean()) if finite.size else math.nan
        sd = float(finite.std(ddof=1)) if finite.size > 1 else math.nan
        table[key] = (mean, sd)
    return table


def _collect_folds(
    data: CellImageDataset,
    classifiers: Sequence[TrainedClassifier],
    folds: Sequence[np.ndarray[Any, Any]],
    *,
    keep_classifiers: bool,
    fold_logits: Sequence[Tensor] | None = None,
) -> CrossValidationResult:
    """Predict every fold's held-out cells with its classifier and tabulate the reports."""
    names = data.class_names
    logits = torch.zeros(len(data), len(names))
    fold_of = np.full(len(data), -1, dtype=np.int64)
    reports: list[ClassificationReport] = []
    for k, (trained, test_idx) in enumerate(zip(classifiers, folds, strict=True)):
        scores = (
            fold_logits[k]
            if fold_logits is not None
            else trained.logits(data.images[torch.from_numpy(test_idx)])
        )
        logits[torch.from_numpy(test_idx)] = scores
        fold_of[test_idx] = k
        reports.append(_report_from_logits(scores, data.targets[test_idx], names))
    return CrossValidationResult(
        fold_reports=reports,
        pooled=_report_from_logits(logits, data.targets, names),
        oof_proba=torch.softmax(logits, dim=-1),
        fold_of=fold_of,
        table=_fold_table(reports),
        classifiers=list(classifiers) if keep_classifiers else [],
    )


# --------------------------------------------------------------------------- the study
def _fmt(value: object) -> str:
    if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "  n/a"
    return f"{value:.3f}"


def _json(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclasses.dataclass
class StudyResult:
    """The outcome of :func:`run_study` (see its example): models, test reports, JSON summary.

    Attributes
    ----------
    trained : TrainedClassifier
        The recipe's model.
    baseline : TrainedClassifier or None
        The raw-pixel linear baseline (``None`` with ``baseline_epochs=0``).
    test : dict of str to ClassificationReport
        Test report of every model, by display name.
    summary : dict
        JSON-ready results (what ``results.json`` holds).
    val_data : CellImageDataset or None
        The validation cells (for the embedding figure).
    """

    trained: TrainedClassifier
    baseline: TrainedClassifier | None
    test: dict[str, ClassificationReport]
    summary: dict[str, Any]
    val_data: CellImageDataset | None

    def format_table(self) -> str:
        """The final table: one row per model, test metrics (deterministic text).

        Returns
        -------
        str
            The table.
        """
        header = f"{'model':22s} {'epoch':>5s} " + " ".join(f"{s:>8s}" for _, s in TABLE_METRICS)
        summary = self.summary
        lines = [
            f"Test split ({sum(summary['split_counts']['test'])} cells), "
            f"weights of the {summary['reported_epoch']}; validation never trains the model.",
            header,
            "-" * len(header),
        ]
        rows = summary["models"]
        for name, entry in rows.items():
            cells = " ".join(f"{_fmt(entry['test'][key]):>8s}" for key, _ in TABLE_METRICS)
            lines.append(f"{name:22s} {entry['tested_epoch']:5d} {cells}")
        if len(rows) == 2:
            (a, first), (_, second) = rows.items()
            gap = first["test"]["balanced_accuracy"] - second["test"]["balanced_accuracy"]
            lines.append(f"{a} - linear balanced accuracy: {gap:+.3f}")
        return "\n".join(lines)

    def save(self, out_dir: str | os.PathLike[str], *, figures: bool = True) -> list[Path]:
        """Write ``results.json``, ``checkpoint.pt`` and (with matplotlib) the figures.

        The figures are ``confusion_matrix.png`` (test split), ``curves.png`` (losses and
        validation metrics per epoch) and ``pca_val.png`` (validation embeddings); they are
        skipped when matplotlib is not installed.

        Parameters
        ----------
        out_dir : str or os.PathLike
            Output folder (created).
        figures : bool, default True
            Also draw the figures.

        Returns
        -------
        list of pathlib.Path
            The written files.
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = [out / "results.json", out / "checkpoint.pt"]
        written[0].write_text(json.dumps(self.summary, indent=2, allow_nan=True))
        self.trained.save(written[1])
        if figures:
            # matplotlib is optional (the ``plot`` extra): without it there are no figures.
            with contextlib.suppress(ImportError):
                written += self._figures(out)
        return written

    def _figures(self, out: Path) -> list[Path]:
        from matplotlib.figure import Figure

        from cellvision.features import extract_features, pca
        from cellvision.plotting import plot_confusion_matrix, plot_embedding, plot_history

        name, trained = self.trained.recipe.model, self.trained
        paths = [out / "confusion_matrix.png", out / "curves.png"]
        fig = plot_confusion_matrix(
            self.test[name].confusion_matrix,
            trained.class_names,
            title=f"{name}: test split (recall per row)",
        )
        fig.savefig(paths[0], dpi=100, bbox_inches="tight")
        fig = Figure(figsize=(10, 4), layout="constrained")
        left, right = fig.subplots(1, 2)
        recorded = set(trained.history.keys())
        losses = [k for k in ("train_loss", "val_loss") if k in recorded]
        plot_history(trained.history, losses, ax=left, title="loss")
        keys = [f"val_{key}" for key, _ in TABLE_METRICS if f"val_{key}" in recorded]
        if keys:
            plot_history(trained.history, keys, ax=right, title="validation metrics")
        fig.savefig(paths[1], dpi=100)
        if self.val_data is not None:
            loader = _NormalizedBatches(
                self.val_data.images, self.val_data.targets, trained.normalize, _EVAL_BATCH
            )
            features, labels = extract_features(trained.model, loader)
            points, ratio = pca(features, 2)
            fig = plot_embedding(
                points,
                labels,
                trained.class_names,
                explained_variance_ratio=ratio,
                title=f"{name}: validation embeddings (PCA)",
            )
            paths.append(out / "pca_val.png")
            fig.savefig(paths[-1], dpi=100, bbox_inches="tight")
        return paths


def run_study(
    recipe: CellCycleRecipe,
    data: CellImageDataset,
    *,
    test_data: CellImageDataset | None = None,
    data_description: str = "",
    device: torch.device | str = "auto",
    progress: bool = True,
    on_epoch: Callable[[str, History], object] | None = None,
    log: Callable[[str], object] | None = print,
) -> StudyResult:
    """The whole study: split, train the model and the pixel baseline, test both once.

    Without ``test_data`` the cells are split with
    :func:`~cellvision.splits.train_val_test_split`; with it, ``data`` is split into training
    and validation cells only and the test report comes from ``test_data`` (a separately
    labelled folder). The validation cells never train a model; the test cells never choose
    anything. Under a process group only rank 0 logs. The splits are stratified on the
    merged classes and every report is on them, whatever ``recipe.train_labels`` is (the
    cells may carry the release classes, see :func:`train`).

    Parameters
    ----------
    recipe : CellCycleRecipe
        The settings (``baseline_epochs=0`` skips the baseline).
    data : CellImageDataset
        Labelled cells.
    test_data : CellImageDataset, optional
        Separate test cells (same class names).
    data_description : str, optional
        Where the data come from (logged and stored in the summary).
    device, progress
        As in :func:`train`.
    on_epoch : callable, optional
        Called as ``on_epoch(model_name, history)`` after every epoch of either model.
    log : callable or None, default print
        Receives the text lines of the study (data, splits, model, table).

    Returns
    -------
    StudyResult
        Trained models, test reports and the JSON summary.

    Examples
    --------
    >>> data = make_synthetic_cells([40, 12, 8, 8, 8], size=24, seed=0)
    >>> recipe = CellCycleRecipe(epochs=1, width=8, depth=2, baseline_epochs=1)
    >>> result = run_study(recipe, data, device="cpu", progress=False, log=None)
    >>> list(result.summary["models"]), result.summary["split_counts"]["test"]
    (['cellcycle_convnet', 'linear (raw pixels)'], [6, 2, 1, 1, 1])
    >>> print(result.format_table().splitlines()[1])
    model                  epoch  bal_acc macro_f1    kappa    auroc
    """

    def say(text: str) -> None:
        if log is not None and _is_main_process():
            log(text)

    start_cpu, start_wall = time.process_time(), time.perf_counter()
    merged = _merged(data)
    names = merged.class_names
    if test_data is None:
        train_idx, val_idx, test_idx = train_val_test_split(
            merged.targets, recipe.val_fraction, recipe.test_fraction, recipe.seed
        )
        test_part = subset(data, test_idx)
    else:
        train_idx, val_idx = stratified_split(merged.targets, recipe.val_fraction, seed=recipe.seed)
        test_part = test_data
    train_part, val_part = subset(data, train_idx), subset(data, val_idx)
    split_counts = {
        split: torch.bincount(_merged(part).targets, minlength=len(names)).tolist()
        for split, part in (("train", train_part), ("val", val_part), ("test", test_part))
    }
    say(f"data: {data_description}; classes {list(names)}")
    for split, counts in split_counts.items():
        say(f"  {split:5s} {sum(counts):6d} cells {counts}")
    say(f"model: {recipe.model}; recipe {recipe.to_json(indent=None)}")

    def hook(name: str) -> Callable[[History], object] | None:
        return None if on_epoch is None else functools.partial(on_epoch, name)

    models: list[tuple[str, TrainedClassifier]] = []
    trained = train(
        recipe, train_part, val_part, device=device, progress=progress, on_epoch=hook(recipe.model)
    )
    models.append((recipe.model, trained))
    baseline = None
    if recipe.baseline_epochs:
        name = "linear (raw pixels)"
        baseline = train_pixel_baseline(
            recipe, train_part, val_part, device=device, progress=progress, on_epoch=hook(name)
        )
        models.append((name, baseline))
    test = {name: evaluate(model, test_part) for name, model in models}
    n_params = sum(p.numel() for p in trained.model.parameters())
    summary: dict[str, Any] = {
        "data": data_description,
        "class_names": list(names),
        "trained_class_names": list(trained.network_class_names),
        "split_counts": split_counts,
        "recipe": recipe.to_dict(),
        "channels": list(recipe.channels),
        "label_free": is_label_free(recipe.channels),
        "reported_split": "test" if test_data is None else "test folder",
        "reported_epoch": (
            "last epoch" if recipe.select == "last" else "best validation balanced accuracy"
        ),
        "epochs_counted_from": 1,
        "models": {
            name: {
                "tested_epoch": model.epoch,
                "test": test[name].to_dict(),
                "history": model.history.to_dict(),
            }
            for name, model in models
        },
        "n_parameters": n_params,
    }
    result = StudyResult(trained, baseline, test, summary, _merged(val_part))
    say("")
    say(result.format_table())
    say("")
    say(f"{recipe.model} on the test split:")
    say(test[recipe.model].format(digits=3))
    summary["seconds"] = {
        "wall": time.perf_counter() - start_wall,
        "cpu": time.process_time() - start_cpu,
    }
    return result


# --------------------------------------------------------------------------- sweeps
def _suggest(trial: Any) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, (kind, spec) in SWEEP_SPACE.items():
        if kind == "log_float":
            params[name] = trial.suggest_float(name, *spec, log=True)
        elif kind == "float":
            params[name] = trial.suggest_float(name, *spec)
        else:
            params[name] = trial.suggest_categorical(name, list(spec))
    return params


def sweep_objective(
    trial: Any,
    *,
    quick: bool = False,
    seed: int = 0,
    data: CellImageDataset | None = None,
    epochs: int | None = None,
) -> float:
    """Optuna objective: the validation balanced accuracy of one drawn recipe.

    Draws the parameters of :data:`SWEEP_SPACE` from ``trial`` (any object with Optuna's
    ``suggest_float``/``suggest_categorical``/``report``/``should_prune``), trains on the
    training split and reports the validation balanced accuracy after every epoch; when
    ``trial.should_prune()`` says so, raises ``optuna.TrialPruned`` (Optuna is imported only
    then). The test split of :func:`~cellvision.splits.train_val_test_split` is never looked
    at. The drawn recipe is stored as the trial's user attribute ``"recipe"`` (JSON).

    Parameters
    ----------
    trial : optuna.trial.Trial or compatible
        The trial.
    quick : bool, default False
        2 epochs per trial (8 otherwise).
    seed : int, default 0
        Seed of the data, split and training.
    data : CellImageDataset, optional
        Cells to use instead of :func:`load_data`'s default (the embedded real sample).
    epochs : int, optional
        Epochs per trial (overrides ``quick``).

    Returns
    -------
    float
        The last epoch's validation balanced accuracy.

    Raises
    ------
    optuna.TrialPruned
        When the trial's pruner stops it.

    Examples
    --------
    >>> import optuna  # the ``tune`` extra
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> data = make_synthetic_cells([40, 12, 8, 8, 8], size=24, seed=0)
    >>> study = optuna.create_study(direction="maximize")
    >>> study.optimize(lambda trial: sweep_objective(trial, data=data, epochs=1), n_trials=1)
    >>> len(study.trials), sorted(study.best_params) == sorted(SWEEP_SPACE)
    (1, True)
    """
    if data is None:
        data, _ = load_data(quick=quick, seed=seed)
    base = CellCycleRecipe(
        epochs=epochs if epochs is not None else (2 if quick else 8), baseline_epochs=0, seed=seed
    )
    recipe = CellCycleRecipe.from_flat_dict(base.to_flat_dict() | _suggest(trial))
    # The test cells of the split are set aside and never looked at while searching.
    train_idx, val_idx, _ = train_val_test_split(
        data.targets, recipe.val_fraction, recipe.test_fraction, seed
    )
    set_user_attr = getattr(trial, "set_user_attr", None)
    if callable(set_user_attr):
        set_user_attr("recipe", recipe.to_json(indent=None))

    def report(history: History) -> None:
        record = history[-1]
        value = record["val_balanced_accuracy"]
        trial.report(float(value) if value is not None else math.nan, int(record["epoch"]))
        if trial.should_prune():
            import optuna

            raise optuna.TrialPruned(f"pruned at epoch {record['epoch']}")

    trained = train(
        recipe,
        subset(data, train_idx),
        subset(data, val_idx),
        progress=False,
        on_epoch=report,
    )
    value = trained.history[-1]["val_balanced_accuracy"]
    return float(value) if value is not None else math.nan
