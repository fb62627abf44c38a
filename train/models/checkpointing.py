"""Activation (gradient) checkpointing for encoder blocks without changing state-dict keys."""

from __future__ import annotations

import types
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


def _checkpointed_forward(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
    plain = type(self).forward
    # Only while training with grad: eval, tracing and ONNX export run the plain forward.
    if self.training and torch.is_grad_enabled():
        return checkpoint(plain, self, *args, use_reentrant=False, **kwargs)
    return plain(self, *args, **kwargs)


def enable_checkpointing(root: nn.Module) -> int:
    """Checkpoint every parameterised child of each Sequential/ModuleList under `root`; return the count.

    That is one checkpoint per block: ResNet bottlenecks, MobileNetV2 inverted residuals, EfficientNet
    MBConv blocks, ultralytics backbone layers. The forward is rebound on the instance (a bound method,
    so deepcopy rebinds it to the copy) instead of wrapping the module, so state-dict keys stay the same
    with and without checkpointing.
    """
    count = 0
    for child in root.children():
        if isinstance(root, nn.Sequential | nn.ModuleList) and any(True for _ in child.parameters()):
            child.forward = types.MethodType(_checkpointed_forward, child)
            count += 1
        else:
            count += enable_checkpointing(child)
    return count
