"""Optional speed settings of the trainer: bf16 autocast, channels-last layout, ``torch.compile``.

All three are off by default, so a run computes exactly the reference study's fp32 arithmetic
unless asked otherwise (``trainer.precision=bf16``, ``trainer.channels_last=true``,
``trainer.compile=true``).

- ``precision=bf16`` runs the forward pass and the loss under ``torch.autocast`` with bfloat16,
  on CUDA and on CPU alike (weights, gradients and the optimizer stay fp32). On a GPU it is
  the usual mixed-precision speed-up for large layers; on a CPU it is allowed because it is
  correct, but it is only faster where the CPU has native bf16 instructions (AVX512-BF16,
  AMX) and the layers are large; the reference CNNs are small, so expect no gain there. A GPU
  without bf16 support and MPS are refused with a clear message.
- ``channels_last`` stores the model's 4-D weights NHWC, so convolutions (cuDNN, oneDNN) and
  everything after them up to the flatten run NHWC; inputs stay NCHW and the first
  convolution converts them. It changes the layout, not the arithmetic (only summation order
  may differ). On CPU it is the largest gain measured for ``mnist_cnn``: about 1.6x per
  epoch, mostly because PyTorch's NCHW ``max_pool2d`` kernel is slow on CPU.
- ``compile`` compiles the model in place with ``torch.compile`` (``nn.Module.compile``, so
  parameter names and checkpoints stay the same). The first epoch pays the compilation.

Data need no transfer work here: :mod:`lrdecay.data` holds every split on the run's device
before training, so the loop never copies batches from the host (no pinned memory to manage).
"""

from __future__ import annotations

import contextlib
from typing import Protocol

import torch
from torch import nn

from lrdecay.errors import ConfigError

PRECISIONS = ("fp32", "bf16")


class SpeedOptions(Protocol):
    """What :func:`accelerate` reads (``TrainerConfig`` has these fields)."""

    precision: str
    channels_last: bool
    compile: bool


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse a precision the device cannot run, naming the fix."""
    if precision not in PRECISIONS:
        raise ConfigError(f"trainer.precision: '{precision}' is not one of "
                          f"{', '.join(PRECISIONS)}")
    if precision != "bf16":
        return
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"trainer.precision: bf16 asked for but {torch.cuda.get_device_name()} "
                          "does not support bfloat16; use trainer.precision=fp32")
    if device.type not in ("cuda", "cpu"):
        raise ConfigError(f"trainer.precision: bf16 autocast is supported on cuda and cpu, not "
                          f"{device.type}; use trainer.precision=fp32")


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The context the forward pass and loss run in: bf16 autocast, or nothing for fp32."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def accelerate(model: nn.Module, device: torch.device, options: SpeedOptions) -> nn.Module:
    """``model`` on ``device`` with the requested layout and compilation (same object back)."""
    check_precision(options.precision, device)
    model = model.to(device)
    if options.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if options.compile:
        model.compile()
    return model
