"""``--device``: names that are not devices, and devices that are not there, are clear errors
before any data is loaded; runs record where they computed; on a machine with a CUDA GPU, a
PyTorch learner there gives the numbers of the same learner on the CPU (TF32 off)."""

import numpy as np
import pytest
import torch

from common.devices import torch_device, use_device
from common.errors import ConfigError

HAS_CUDA = torch.cuda.is_available()


@pytest.mark.parametrize("name", ["gpu", "cpu:1", "cuda:x", "mps:0", ""])
def test_a_name_that_is_no_device_is_refused(name):
    with pytest.raises(ConfigError, match="is not a device; use auto"):
        torch_device(name)


def test_cpu_and_auto():
    assert torch_device("cpu") == torch.device("cpu")
    assert torch_device("CPU") == torch.device("cpu")
    assert torch_device("auto").type == ("cuda" if HAS_CUDA else "cpu")
    assert use_device("torch", "cpu") == "cpu" and use_device("tf", "cpu") == "cpu"


@pytest.mark.skipif(HAS_CUDA, reason="this machine has a CUDA GPU")
def test_a_missing_gpu_is_a_clear_error():
    with pytest.raises(ConfigError, match="sees no CUDA GPU. Use --device cpu"):
        torch_device("cuda")
    with pytest.raises(ConfigError, match="sees no GPU. Use --device cpu"):
        use_device("tf", "cuda:0")
    with pytest.raises(ConfigError, match="mps is a PyTorch device"):
        use_device("keras", "mps")


@pytest.mark.skipif(HAS_CUDA, reason="this machine has a CUDA GPU")
def test_scripts_refuse_a_missing_gpu_before_loading_data(tmp_path):
    from chapters.metric import device_agreement
    from chapters.metric import protonet
    from chapters.optimization import maml, sinusoid

    missing = str(tmp_path / "no-data-here")  # never read: the device is checked first
    with pytest.raises(ConfigError, match="sees no CUDA GPU"):
        protonet.main(["--device", "cuda", "--data-dir", missing, "--out", str(tmp_path)])
    with pytest.raises(ConfigError, match="sees no CUDA GPU"):
        maml.main(["--device", "cuda", "--data-dir", missing, "--out", str(tmp_path)])
    with pytest.raises(ConfigError, match="sees no CUDA GPU"):
        sinusoid.main(["--device", "cuda", "--out", str(tmp_path)])
    with pytest.raises(ConfigError, match="sees no CUDA GPU"):
        device_agreement.main(["--data-dir", missing])  # its default device is cuda
    assert not any(tmp_path.iterdir())


def test_a_run_records_its_device(tmp_path):
    from chapters.optimization import sinusoid

    result = sinusoid.main(["--device", "cpu", "--iterations", "2", "--log-every", "2", "--test-tasks", "3",
                            "--eval-steps", "1", "--out", str(tmp_path)])
    assert result["device"] == "cpu"


def test_device_agreement_finds_the_cpu_equal_to_itself(omniglot_train):
    """The chapter's CPU-against-GPU comparison, run against the CPU: every gap is exactly zero, in
    every setting, and PyTorch's TF32 flags are as they were before."""
    from chapters.metric import device_agreement

    flags = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    rows = device_agreement.main(["--device", "cpu"])
    assert len(rows) == 6 and {row["dtype"] for row in rows} == {"float32", "float64"}
    for row in rows:
        assert row["first_loss_gap"] == 0 and row["worst_gradient_gap"] == 0
        np.testing.assert_array_equal(row["device_adam_losses"], row["cpu_adam_losses"])
    assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == flags


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
def test_torch_learners_on_a_gpu_match_the_cpu(omniglot_splits, monkeypatch):
    # cuDNN convolutions run in TF32 (a 10-bit mantissa) by default on Ampere and newer GPUs. Adam
    # makes every parameter move by about lr, whatever its gradient's size, so the rounding shows
    # after one step: on an H200, ProtoNet's second loss came out 1.5% off the CPU's and MAML's 4%
    # off. TF32 off, the three losses agreed to 5e-4 (ProtoNet) and 1e-6 (MAML); in float64, to
    # 1e-15 (``python -m chapters.metric.device_agreement`` prints these comparisons for ProtoNet).
    # Training keeps TF32, which costs no accuracy (see the metric chapter's GPU run).
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    from chapters.metric.train import build_learner as metric_learner
    from chapters.optimization.train import build_learner as optimization_learner
    from common.episodes import EpisodeSampler, MetaBatches

    sampler = EpisodeSampler(omniglot_splits["train"], 5, 1, 3, seed=0)
    learners = {device: metric_learner("protonet", "torch", 1, sampler.episode(0), 1e-3, None, 0, device)
                for device in ("cpu", "cuda")}
    losses = {device: [learner.train_step(sampler.episode(i))["loss"] for i in range(3)]
              for device, learner in learners.items()}
    np.testing.assert_allclose(losses["cuda"], losses["cpu"], rtol=1e-3)

    settings = {"inner_lr": 0.4, "inner_steps": 1, "meta_lr": 1e-3}
    batches = MetaBatches(sampler, 2)
    maml = {device: optimization_learner("maml", "torch", 5, (28, 28, 1), 0, settings, device)
            for device in ("cpu", "cuda")}
    losses = {device: [learner.meta_step(batches.episode(i))["loss"] for i in range(3)]
              for device, learner in maml.items()}
    np.testing.assert_allclose(losses["cuda"], losses["cpu"], rtol=1e-3)
    np.testing.assert_allclose(maml["cuda"].predict(sampler.episode(9)), maml["cpu"].predict(sampler.episode(9)),
                               rtol=1e-3, atol=1e-3)
