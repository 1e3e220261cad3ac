"""Where a run computes: the ``--device`` option of every training script.

    --device auto     a GPU if the framework sees one, else the CPU (the default)
    --device cpu      the CPU, even where a GPU is present
    --device cuda     the first CUDA GPU; ``cuda:1`` the second, ...
    --device mps      Apple's GPU (PyTorch only)

PyTorch places nothing by itself: the learner moves its model to :func:`torch_device` and each
episode follows the model. TensorFlow and Keras place every op on a visible GPU by themselves, so
:func:`use_device` only chooses which GPUs stay visible, which must happen before TensorFlow
first touches them. A device that is not there is a clear :class:`ConfigError`, before any data
is loaded. The device is recorded in the results (``device``) but is not part of a checkpoint's
identity: a run started on a GPU may be resumed on a CPU, and the other way round.
On a GPU, :func:`gpu_name` gives the results the GPU's name as well (``machine.gpu``), and
:func:`cuda_version` the CUDA its framework was built for (``versions.cuda``).
"""

from __future__ import annotations

import re

from common.errors import ConfigError

DEVICE_HELP = "auto (a GPU if there is one), cpu, cuda, cuda:N, or mps (PyTorch on Apple silicon)"


def _parse(name: str) -> tuple[str, int | None]:
    match = re.fullmatch(r"(auto|cpu|mps|cuda)(?::(\d+))?", name.strip().lower())
    if match is None or (match.group(2) is not None and match.group(1) != "cuda"):
        raise ConfigError(f"--device {name!r} is not a device; use {DEVICE_HELP}")
    return match.group(1), None if match.group(2) is None else int(match.group(2))


def torch_device(name: str = "auto"):
    """The ``torch.device`` of ``--device name``; a clear error if this PyTorch cannot use it."""
    import torch

    kind, index = _parse(name)
    if kind == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if kind == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"--device {name}: this PyTorch ({torch.__version__}) sees no CUDA GPU. "
                              f"Use --device cpu, or install a CUDA build of PyTorch on a machine with a GPU")
        if (index or 0) >= count:
            raise ConfigError(f"--device {name}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
        return torch.device("cuda", index or 0)
    if kind == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ConfigError(f"--device mps: this PyTorch sees no Apple GPU; use --device cpu")
    return torch.device(kind)


def use_device(framework: str, name: str = "auto") -> str:
    """Make ``framework`` compute on ``--device name``; returns the device used (e.g. ``"cuda:0"``),
    for the results. PyTorch learners then take :func:`torch_device` themselves."""
    if framework == "torch":
        device = torch_device(name)
        return str(device) if device.type != "cuda" else f"cuda:{device.index or 0}"
    import tensorflow as tf

    kind, index = _parse(name)
    if kind == "mps":
        raise ConfigError("--device mps is a PyTorch device; TensorFlow and Keras use cpu or cuda")
    gpus = tf.config.list_physical_devices("GPU")
    if kind == "auto":
        return "cuda:0" if gpus else "cpu"
    if kind == "cuda" and not gpus:
        raise ConfigError(f"--device {name}: TensorFlow {tf.__version__} sees no GPU. Use --device cpu, "
                          f"or install tensorflow[and-cuda] on a machine with a GPU")
    if kind == "cuda" and (index or 0) >= len(gpus):
        raise ConfigError(f"--device {name}: TensorFlow sees {len(gpus)} GPU(s), cuda:0 to cuda:{len(gpus) - 1}")
    visible = [] if kind == "cpu" else [gpus[index or 0]]
    if gpus and tf.config.get_visible_devices("GPU") != visible:
        try:
            tf.config.set_visible_devices(visible, "GPU")
        except RuntimeError as error:  # TensorFlow has already placed something on its GPUs
            raise ConfigError(f"--device {name}: TensorFlow's GPUs were set up before this run started "
                              f"({error}); start a fresh Python process") from None
    return "cpu" if kind == "cpu" else f"cuda:{index or 0}"  # TensorFlow calls the one it sees GPU:0


def gpu_name(device: str | None, framework: str | None) -> str | None:
    """The GPU behind a run's recorded ``device`` (``cuda:N``, as :func:`use_device` returns it),
    as its framework names it (``NVIDIA H200``), or None off a CUDA GPU: a run's seconds per
    episode on a GPU depend on the GPU, not on the processor."""
    if not device:
        return None
    kind, index = _parse(device)
    if kind != "cuda":
        return None
    try:  # a name is provenance: a lookup that fails must not lose the finished run's result
        if framework == "torch":
            import torch
            return torch.cuda.get_device_name(index or 0)
        import tensorflow as tf  # tf, and keras on its TensorFlow backend
        details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[index or 0])
        return details.get("device_name", "unknown GPU")
    except (ImportError, RuntimeError, AssertionError, IndexError, ValueError):
        return "unknown GPU"


def cuda_version(framework: str | None) -> str | None:
    """The CUDA version ``framework`` was built for (``13.0``), or None for a CPU-only build: a
    wheel's version (``torch 2.11.0``) does not say it, and a GPU's speed depends on it."""
    try:
        if framework == "torch":
            import torch
            return torch.version.cuda
        import tensorflow as tf  # tf, and keras on its TensorFlow backend
        return tf.sysconfig.get_build_info().get("cuda_version")
    except (ImportError, AttributeError):
        return None
