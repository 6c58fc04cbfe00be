"""Properties every image classifier of the zoo must have (shared by the model tests)."""

from __future__ import annotations

import torch
from torch import nn


def check_classifier_contract(
    model: nn.Module, x: torch.Tensor, n_classes: int, n_features: int
) -> None:
    """Shapes, dtype, finite gradients on every parameter, determinism, batch independence.

    ``model`` must be in training mode; it is left in eval mode.
    """
    batch = x.shape[0]
    logits = model(x)
    assert logits.shape == (batch, n_classes)
    assert logits.dtype == torch.float32
    assert model.forward_features(x).shape == (batch, n_features)
    logits.logsumexp(-1).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    model.eval()
    with torch.no_grad():
        full = model(x)
        torch.testing.assert_close(model(x), full, atol=0, rtol=0)  # deterministic
        # a sample's logits do not depend on the other samples of its batch
        first, last = model(x[:1]), model(x[-1:])
    torch.testing.assert_close(first, full[:1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(last, full[-1:], atol=1e-5, rtol=1e-5)
