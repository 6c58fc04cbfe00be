"""Small recurrent regressors (RNN, GRU, LSTM) for windows of a multivariate series.

The recurrent stack reads a ``(batch, time, features)`` window; the final hidden state of its
last layer is the feature vector (:meth:`RecurrentRegressor.forward_features`) and a linear
layer maps it to the ``output_size`` predictions (:meth:`RecurrentRegressor.forward_head`).
Variable-length batches are supported through ``lengths`` (packed sequences).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from cellvision.config import (
    Config,
    check_choice,
    check_positive_int,
    check_probability,
)
from cellvision.layers._checks import check_dtype
from cellvision.models._common import check_parameter_budget
from cellvision.models._registry import register_model

__all__ = ["RecurrentConfig", "RecurrentRegressor"]

CELLS: tuple[str, ...] = ("rnn", "gru", "lstm")


@dataclasses.dataclass(frozen=True, kw_only=True)
class RecurrentConfig(Config):
    """Configuration of :class:`RecurrentRegressor`.

    Parameters
    ----------
    cell : {"rnn", "gru", "lstm"}, default "lstm"
        Recurrent cell type (:class:`torch.nn.RNN`, :class:`~torch.nn.GRU`,
        :class:`~torch.nn.LSTM`).
    input_size : int, default 1
        Features per time step (1: a univariate series). Set it to the number of input
        columns of the data, e.g. ``len(dataset.input_columns)`` for a
        :class:`~cellvision.data.windows.SlidingWindowDataset`.
    hidden_size : int, default 64
        Width of the recurrent hidden state, and so of the embedding that
        :meth:`RecurrentRegressor.forward_features` returns.
    num_layers : int, default 2
        Stacked recurrent layers.
    dropout : float, default 0.0
        Dropout probability between stacked layers and on the final hidden state before the
        output layer.
    output_size : int, default 1
        Number of predicted values per sample.
    nonlinearity : {"tanh", "relu"}, default "tanh"
        Activation of the plain ``"rnn"`` cell (ignored by GRU and LSTM).

    Raises
    ------
    ValueError
        If a field is out of range or ``cell``/``nonlinearity`` is unknown (the message
        names the field).
    TypeError
        If an integer field is not an integer.

    Examples
    --------
    >>> RecurrentConfig(cell="gru", hidden_size=32).num_layers
    2
    >>> RecurrentConfig(cell="transformer")
    Traceback (most recent call last):
        ...
    ValueError: cell must be one of ('rnn', 'gru', 'lstm'), got 'transformer'
    """

    cell: Literal["rnn", "gru", "lstm"] = "lstm"
    input_size: int = 1
    hidden_size: int = 64
    num_layers: int = 2
    dropout: float = 0.0
    output_size: int = 1
    nonlinearity: Literal["tanh", "relu"] = "tanh"

    def __post_init__(self) -> None:
        check_choice("cell", self.cell, CELLS)
        # Stored as Python numbers (numpy scalars accepted) so the config serialises to JSON.
        for name in ("input_size", "hidden_size", "num_layers", "output_size"):
            object.__setattr__(self, name, check_positive_int(name, getattr(self, name)))
        object.__setattr__(self, "dropout", check_probability("dropout", self.dropout))
        check_choice("nonlinearity", self.nonlinearity, ("tanh", "relu"))

    def parameter_count(self) -> int:
        """Return the number of learnable parameters of a :class:`RecurrentRegressor`.

        Computed from the fields alone, so that an absurd config (for instance from a crafted
        checkpoint) is refused before any allocation.

        Returns
        -------
        int
            Equal to ``sum(p.numel() for p in RecurrentRegressor(config).parameters())``.

        Examples
        --------
        >>> config = RecurrentConfig(cell="gru", input_size=3, hidden_size=4)
        >>> config.parameter_count() == sum(
        ...     p.numel() for p in RecurrentRegressor(config).parameters())
        True
        """
        gates = {"rnn": 1, "gru": 3, "lstm": 4}[self.cell]
        h = self.hidden_size
        total = 0
        for layer in range(self.num_layers):
            width = self.input_size if layer == 0 else h
            total += gates * h * (width + h + 2)  # weight_ih, weight_hh, bias_ih, bias_hh
        return total + h * self.output_size + self.output_size


@register_model("lstm_regressor", cell="lstm")
@register_model("gru_regressor", cell="gru")
@register_model("rnn_regressor", cell="rnn")
class RecurrentRegressor(nn.Module):
    """RNN/GRU/LSTM regressor: last layer's final hidden state -> linear layer.

    Parameters
    ----------
    config : RecurrentConfig
        The architecture.

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`RecurrentConfig`.

    Examples
    --------
    >>> from cellvision.models import create_model
    >>> model = create_model("gru_regressor", input_size=4, hidden_size=8)
    >>> x = model.example_input(3, seq_len=10, generator=torch.Generator().manual_seed(0))
    >>> model(x).shape, model.forward_features(x).shape
    (torch.Size([3, 1]), torch.Size([3, 8]))
    >>> model(x, lengths=torch.tensor([10, 4, 1])).shape  # variable-length batch
    torch.Size([3, 1])
    """

    config_class: ClassVar[type[Config]] = RecurrentConfig

    def __init__(self, config: RecurrentConfig) -> None:
        super().__init__()
        if not isinstance(config, RecurrentConfig):
            raise TypeError(f"config must be a RecurrentConfig, got {type(config).__name__}")
        check_parameter_budget(config)
        self.config = config
        kwargs: dict[str, object] = {
            "input_size": config.input_size,
            "hidden_size": config.hidden_size,
            "num_layers": config.num_layers,
            "batch_first": True,
            # torch applies this between layers only and warns when there is one layer
            "dropout": config.dropout if config.num_layers > 1 else 0.0,
        }
        self.rnn: nn.RNNBase
        if config.cell == "lstm":
            self.rnn = nn.LSTM(**kwargs)
        elif config.cell == "gru":
            self.rnn = nn.GRU(**kwargs)
        else:
            self.rnn = nn.RNN(nonlinearity=config.nonlinearity, **kwargs)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, config.output_size)

    def _check_input(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor | None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 3:
            raise ValueError(
                f"x must be a 3-D tensor (batch, time, features), got shape {tuple(x.shape)}"
            )
        if x.shape[2] != self.config.input_size:
            raise ValueError(
                f"x must have input_size={self.config.input_size} features on its last axis, "
                f"got shape {tuple(x.shape)}"
            )
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(f"x must have at least one sample and one step, got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise TypeError(f"x must be a floating-point tensor, got dtype {x.dtype}")
        check_dtype(x, self.head.weight.dtype)
        if lengths is None:
            return None
        lens = torch.as_tensor(lengths)
        if (
            lens.ndim != 1
            or lens.shape[0] != x.shape[0]
            or lens.is_floating_point()
            or lens.is_complex()
            or lens.dtype == torch.bool
        ):
            raise ValueError(
                f"lengths must be a 1-D integer tensor of {x.shape[0]} sequence lengths, "
                f"got {lengths!r}"
            )
        lens = lens.detach().to("cpu", torch.int64)
        if int(lens.min()) < 1 or int(lens.max()) > x.shape[1]:
            raise ValueError(f"lengths must be in [1, {x.shape[1]}], got {lengths!r}")
        return lens

    def forward_features(
        self, x: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Return the last layer's final hidden state.

        Parameters
        ----------
        x : torch.Tensor
            ``(batch, time, input_size)`` floating-point input.
        lengths : torch.Tensor, optional
            ``(batch,)`` valid lengths for right-padded sequences; the state is taken at each
            sequence's own last step.

        Returns
        -------
        torch.Tensor
            ``(batch, hidden_size)``.

        Raises
        ------
        ValueError
            If ``x`` has the wrong rank or feature count, or ``lengths`` is invalid.
        TypeError
            If ``x`` is not a floating-point tensor.

        Examples
        --------
        >>> model = RecurrentRegressor(RecurrentConfig(cell="rnn", input_size=2, hidden_size=5))
        >>> model.forward_features(torch.zeros(4, 7, 2)).shape
        torch.Size([4, 5])
        >>> model.forward_features(torch.zeros(4, 7))
        Traceback (most recent call last):
            ...
        ValueError: x must be a 3-D tensor (batch, time, features), got shape (4, 7)
        """
        lens = self._check_input(x, lengths)
        if lens is None:
            _, state = self.rnn(x)
        else:
            packed = pack_padded_sequence(x, lens, batch_first=True, enforce_sorted=False)
            _, state = self.rnn(packed)
        h_n: torch.Tensor = state[0] if isinstance(state, tuple) else state
        return h_n[-1]

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Map hidden states to predictions (dropout, then the linear layer).

        Parameters
        ----------
        features : torch.Tensor
            ``(batch, hidden_size)``.

        Returns
        -------
        torch.Tensor
            ``(batch, output_size)``.

        Raises
        ------
        ValueError
            If ``features`` does not have shape ``(batch, hidden_size)``.
        TypeError
            If ``features`` is not a floating-point tensor of the model's dtype.

        Examples
        --------
        >>> model = RecurrentRegressor(RecurrentConfig(hidden_size=6, output_size=2))
        >>> model.forward_head(torch.zeros(3, 6)).shape
        torch.Size([3, 2])
        """
        if not isinstance(features, torch.Tensor) or not features.is_floating_point():
            raise TypeError(f"features must be a floating-point tensor, got {features!r}")
        check_dtype(features, self.head.weight.dtype, "features")
        if features.ndim != 2 or features.shape[1] != self.config.hidden_size:
            raise ValueError(
                f"features must have shape (batch, {self.config.hidden_size}), got "
                f"{tuple(features.shape)}"
            )
        out: torch.Tensor = self.head(self.dropout(features))
        return out

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Predict from windows: ``forward_head(forward_features(x, lengths))``.

        Parameters
        ----------
        x : torch.Tensor
            ``(batch, time, input_size)``.
        lengths : torch.Tensor, optional
            ``(batch,)`` valid lengths of right-padded sequences.

        Returns
        -------
        torch.Tensor
            ``(batch, output_size)``.

        Raises
        ------
        ValueError
            If ``x`` or ``lengths`` is invalid.

        Examples
        --------
        >>> model = RecurrentRegressor(RecurrentConfig(cell="lstm", input_size=3))
        >>> model(torch.zeros(2, 48, 3)).shape
        torch.Size([2, 1])
        """
        return self.forward_head(self.forward_features(x, lengths))

    def example_input(
        self,
        batch_size: int = 2,
        *,
        generator: torch.Generator | None = None,
        seq_len: int = 48,
    ) -> torch.Tensor:
        """Return a random standard-normal input ``(batch_size, seq_len, input_size)``.

        Parameters
        ----------
        batch_size : int, default 2
            Number of sequences.
        generator : torch.Generator, optional
            Source of randomness (CPU generator; the result is moved to the model's device).
        seq_len : int, default 48
            Time steps (48 hourly steps: two days).

        Returns
        -------
        torch.Tensor
            On the model's device, with its parameter dtype.

        Raises
        ------
        ValueError
            If ``batch_size`` or ``seq_len`` is not positive.

        Examples
        --------
        >>> model = RecurrentRegressor(RecurrentConfig())
        >>> model.example_input().shape
        torch.Size([2, 48, 1])
        """
        check_positive_int("batch_size", batch_size)
        check_positive_int("seq_len", seq_len)
        if batch_size * seq_len * self.config.input_size > 1 << 32:  # 16 GiB of float32
            raise ValueError(
                f"batch_size and seq_len must keep the example at most 2**32 values, got "
                f"batch_size={batch_size!r}, seq_len={seq_len!r}"
            )
        param = self.head.weight
        gen_device = generator.device if generator is not None else torch.device("cpu")
        x = torch.randn(
            batch_size, seq_len, self.config.input_size, generator=generator, device=gen_device
        )
        return x.to(device=param.device, dtype=param.dtype)
