"""Speed settings of the trainer: channels-last layout, bf16 autocast, ``torch.compile``.

A run computes the reference study's fp32 arithmetic unless asked otherwise; only the
layout default (``trainer.channels_last=auto``) is chosen for speed, because it changes the
order of summation, not the computation.

- ``channels_last`` stores the model's 4-D weights NHWC, so convolutions (cuDNN, oneDNN) and
  everything after them up to the flatten run NHWC; inputs stay NCHW and the first
  convolution converts them. ``auto`` turns it on on CPU, where it was measured faster for
  every reference model and thread count (per epoch on this project's 2-core machine:
  mnist_cnn 2.0x at 1 thread, 1.6x at 2; cifar_cnn 1.3-1.7x; digits 1.1-1.25x: PyTorch's
  NCHW ``max_pool2d`` is slow on CPU), and on CUDA with bf16, where cuDNN's tensor-core
  kernels are NHWC-native; fp32 on a GPU and MPS stay NCHW. ``on``/``off`` force it.
  Validation accuracies agree with NCHW to within a sample or two in ten thousand.
- ``precision=bf16`` runs the forward pass and the loss under ``torch.autocast`` with bfloat16,
  on CUDA and on CPU alike (weights, gradients and the optimizer stay fp32). On a GPU it is
  the usual mixed-precision speed-up for large layers; on a CPU it is allowed because it is
  correct, but it is only faster where the CPU has native bf16 instructions (AVX512-BF16,
  AMX) and the layers are large; the reference CNNs are small, so expect no gain there. A GPU
  without bf16 support and MPS are refused with a clear message.
- ``compile`` compiles the model in place with ``torch.compile`` (``nn.Module.compile``, so
  parameter names and checkpoints stay the same). The first epoch pays the compilation.

Data need no transfer work here: :mod:`lrdecay.core.data` holds every split on the run's device
before training, so the loop never copies batches from the host (no pinned memory to manage).
"""

from __future__ import annotations

import contextlib
from typing import Protocol

import torch
from torch import nn

from lrdecay.errors import ConfigError


class SpeedOptions(Protocol):
    """What :func:`accelerate` reads (``TrainerConfig`` has these fields)."""

    precision: str
    channels_last: str  # auto | on | off
    compile: bool


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse a precision the device cannot run, naming the fix (the name itself is checked
    with the rest of the config, by ``TrainerConfig``)."""
    if precision != "bf16":
        return
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(
            f"trainer.precision: bf16 asked for but {torch.cuda.get_device_name()} "
            "does not support bfloat16; use trainer.precision=fp32"
        )
    if device.type not in ("cuda", "cpu"):
        raise ConfigError(
            f"trainer.precision: bf16 autocast is supported on cuda and cpu, not "
            f"{device.type}; use trainer.precision=fp32"
        )


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The context the forward pass and loss run in: bf16 autocast, or nothing for fp32."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def uses_channels_last(setting: str, device: torch.device, precision: str) -> bool:
    """Whether a run stores its model NHWC: ``on``/``off`` as asked; ``auto`` on CPU, and on
    CUDA under bf16 (see the module's notes for the measurements behind it)."""
    if setting == "auto":
        return device.type == "cpu" or (device.type == "cuda" and precision == "bf16")
    return setting == "on"


def accelerate(model: nn.Module, device: torch.device, options: SpeedOptions) -> nn.Module:
    """``model`` on ``device`` with the requested layout and compilation (same object back)."""
    check_precision(options.precision, device)
    model = model.to(device)
    if uses_channels_last(options.channels_last, device, options.precision):
        model = model.to(memory_format=torch.channels_last)
    if options.compile:
        model.compile()
    return model
