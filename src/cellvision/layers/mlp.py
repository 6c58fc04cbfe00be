"""Two-layer perceptron used as the transformer feed-forward block and as a classifier head."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from cellvision.config import check_choice, check_positive_int, check_probability

__all__ = ["MLP"]

_ACTIVATIONS: dict[str, type[nn.Module]] = {"gelu": nn.GELU, "relu": nn.ReLU}


class MLP(nn.Module):
    """``Linear -> activation -> Dropout -> Linear -> Dropout``.

    Parameters
    ----------
    in_features : int
        Input width.
    hidden_features : int
        Width of the hidden layer (the transformer's ``hidden_size``).
    out_features : int, optional
        Output width; defaults to ``in_features``.
    activation : {"gelu", "relu"}, default "gelu"
        Hidden nonlinearity (GELU uses the exact erf form).
    dropout : float, default 0.0
        Dropout after the activation and after the output layer, in ``[0, 1)``.
    final_dropout : bool, default True
        Apply dropout to the output too; a classifier head sets it to ``False`` so logits
        are not dropped.

    Raises
    ------
    TypeError, ValueError
        If a width is not a positive integer, the activation is unknown or the dropout rate
        is outside ``[0, 1)``.

    Examples
    --------
    >>> mlp = MLP(8, 32)
    >>> mlp(torch.randn(2, 5, 8)).shape
    torch.Size([2, 5, 8])
    >>> MLP(8, 0)
    Traceback (most recent call last):
        ...
    ValueError: hidden_features must be a positive integer, got 0
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        out_features: int | None = None,
        *,
        activation: Literal["gelu", "relu"] = "gelu",
        dropout: float = 0.0,
        final_dropout: bool = True,
    ) -> None:
        super().__init__()
        out_features = in_features if out_features is None else out_features
        check_positive_int("in_features", in_features)
        check_positive_int("hidden_features", hidden_features)
        check_positive_int("out_features", out_features)
        check_choice("activation", activation, _ACTIVATIONS)
        check_probability("dropout", dropout)
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = _ACTIVATIONS[activation]()
        self.drop1 = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden_features, out_features)
        self.drop2 = nn.Dropout(dropout if final_dropout else 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the two layers to the last dimension.

        Parameters
        ----------
        x : torch.Tensor
            Shape ``(..., in_features)``.

        Returns
        -------
        torch.Tensor
            Shape ``(..., out_features)``.

        Examples
        --------
        >>> MLP(4, 8, 2)(torch.zeros(3, 4)).shape
        torch.Size([3, 2])
        """
        out: torch.Tensor = self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))
        return out
