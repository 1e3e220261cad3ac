"""How far a PyTorch model's numbers on a GPU are from the same model's on the CPU, and why (the
chapter's section 7, "On a GPU"; exercise 5, ``exercises/05_adam_steps``).

    python -m chapters.metric.device_agreement                  # the first CUDA GPU against the CPU
    python -m chapters.metric.device_agreement --device cpu     # the CPU against itself: all zeros

ProtoNet, one Omniglot 5-way 1-shot episode with 3 queries per class (the episodes of
``tests/test_devices.py``), the same initial weights on both devices. For float32 with TF32 on
(PyTorch's default for convolutions on NVIDIA GPUs since Ampere), float32 with TF32 off, and
float64, each with and without ``channels_last``, it prints

* the relative difference of the first loss, and the largest gradient difference of any weight
  tensor, relative to that tensor's largest gradient;
* the losses of three Adam steps (lr 1e-3) on each device.

The convolutions' biases are left out of the gradient comparison: BatchNorm right after each
convolution subtracts them again, so their gradients are zero up to rounding, and two roundings
differ by 100%. Adam still moves them by about lr (exercise 5), which is harmless here.
"""

from __future__ import annotations

import argparse
import copy

import numpy as np
import torch

from chapters.metric.protonet_torch import ProtoNet
from common.adapters import to_torch
from common.data import load_dataset
from common.devices import torch_device
from common.episodes import EpisodeSampler
from common.episodic_torch import episode_loss


def prepared(model, device, dtype, channels_last: bool):
    """A copy of ``model`` on ``device`` in ``dtype`` and the chosen memory layout."""
    model = copy.deepcopy(model).to(device=device, dtype=dtype)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def batch(sampler, index: int, device, dtype):
    support_x, support_y, query_x, query_y = to_torch(sampler.episode(index), device)
    return support_x.to(dtype), support_y, query_x.to(dtype), query_y


def loss_and_gradients(model, sampler, device, dtype, channels_last):
    model = prepared(model, device, dtype, channels_last)
    model.train()
    loss, _ = episode_loss(model, *batch(sampler, 0, device, dtype))
    loss.backward()
    return loss.item(), {name: p.grad.double().cpu() for name, p in model.named_parameters()}


def adam_losses(model, sampler, device, dtype, channels_last, steps: int = 3) -> np.ndarray:
    model = prepared(model, device, dtype, channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for index in range(steps):
        model.train()
        loss, _ = episode_loss(model, *batch(sampler, index, device, dtype))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return np.array(losses)


def compare(model, sampler, device, dtype, channels_last) -> dict:
    """The CPU's numbers against ``device``'s, for one setting."""
    (cpu_loss, cpu_grads), (loss, grads) = (loss_and_gradients(model, sampler, d, dtype, channels_last)
                                            for d in (torch.device("cpu"), device))
    gradient_gaps = {name: float((grads[name] - g).abs().max() / g.abs().max())
                     for name, g in cpu_grads.items() if not name.endswith("conv.bias")}
    worst = max(gradient_gaps, key=gradient_gaps.get)
    return {"first_loss_gap": abs(loss - cpu_loss) / abs(cpu_loss), "worst_gradient": worst,
            "worst_gradient_gap": gradient_gaps[worst],
            "cpu_adam_losses": adam_losses(model, sampler, torch.device("cpu"), dtype, channels_last),
            "device_adam_losses": adam_losses(model, sampler, device, dtype, channels_last)}


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="python -m chapters.metric.device_agreement",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="the device compared with the CPU (cuda, cuda:N, cpu)")
    parser.add_argument("--data-dir", default=None, help="data root (default: $METALEARN_DATA or ./data)")
    args = parser.parse_args(argv)

    device = torch_device(args.device)  # a clear error, before any data is read, if there is no GPU
    sampler = EpisodeSampler(load_dataset("omniglot", "train", args.data_dir), 5, 1, 3, seed=0)
    torch.manual_seed(0)
    model = ProtoNet(1)
    rows, defaults = [], (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    try:
        for dtype, tf32 in ((torch.float32, True), (torch.float32, False), (torch.float64, False)):
            # TF32 applies to float32 alone; float64 convolutions are exact whatever the flag says.
            torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = tf32
            for channels_last in (True, False):
                row = {"dtype": str(dtype).removeprefix("torch."), "tf32": tf32, "channels_last": channels_last,
                       **compare(model, sampler, device, dtype, channels_last)}
                rows.append(row)
                print(f"{row['dtype']}, TF32 {'on ' if tf32 else 'off'}, channels_last {channels_last!s:<5}: "
                      f"first loss {row['first_loss_gap']:.1e} apart, gradients up to "
                      f"{row['worst_gradient_gap']:.1e} of their largest ({row['worst_gradient']}); Adam losses "
                      f"cpu {np.round(row['cpu_adam_losses'], 5)}, {device} {np.round(row['device_adam_losses'], 5)}")
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = defaults
    return rows


if __name__ == "__main__":
    from common.cli import run

    run(main)
