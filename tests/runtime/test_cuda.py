"""The GPU path, checked on a GPU (`make gpu-check`): every test here is marked `cuda` and skips,
with its reason, where torch sees no CUDA device.

- every deterministic corruption on CUDA equals its CPU result bit for bit (the CPU equals the
  golden files; tests/cuda_arith.py emulates CUDA's division on the CPU, this is the real thing);
  random corruptions: the CPU's statistics, and elastic/spatter the CPU's values given the same draws;
- one GPU call over many chunks (draws.Streams) equals the chunks corrupted one by one;
- every policy's ops on CUDA equal the CPU's given the same draws (run_slots' sync-free path),
  and every policy's statistics match the CPU's;
- no host sync in a training step (`torch.cuda.set_sync_debug_mode("error")`);
- a short train + eval on CUDA (bf16 autocast, channels_last), once with --compile, and CUDA's
  fp32 eval counts against the CPU's.

Nothing here imports `datasets` (the GPU machine has torch, torchvision and the like only).
"""

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from locations import SHARED

from robench.augment import POLICIES, common, dispatch, make_policy
from robench.corruptions import corrupt
from robench.corruptions.protocol import CORRUPTIONS, DETERMINISTIC

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run by make gpu-check)")]

RANDOM = [c for c in CORRUPTIONS if c not in DETERMINISTIC]

SHARED_INPUTS = "golden/cifar10c/inputs.npy"


def photo_batch(n: int = 128) -> torch.Tensor:
    """The golden inputs when ../shared is beside the clone, else smooth random images with flat
    patches (where exactness is hardest: many values land on an integer)."""
    if (SHARED / SHARED_INPUTS).exists():
        return torch.from_numpy(np.load(SHARED / SHARED_INPUTS)).permute(0, 3, 1, 2).contiguous()[:n]
    g = torch.Generator().manual_seed(0)
    coarse = torch.rand(n, 3, 6, 6, generator=g)
    images = (torch.nn.functional.interpolate(coarse, size=(32, 32), mode="bilinear") * 255).to(torch.uint8)
    images[:, :, :8, :8] = 128
    return images


@pytest.mark.parametrize("name", sorted(DETERMINISTIC))
@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_deterministic_corruptions_equal_the_cpu_bit_for_bit(name, severity):
    images = photo_batch()
    cuda = corrupt(images.cuda(), name, severity)
    assert cuda.device.type == "cuda" and cuda.dtype == torch.uint8
    cpu = corrupt(images, name, severity)
    diff = (cuda.cpu().int() - cpu.int()).abs()
    assert diff.max() == 0, (name, severity, (diff == 0).double().mean().item())


def psnr_and_mean(out: torch.Tensor, clean: torch.Tensor) -> tuple[float, float]:
    mse = (out.double() - clean.double()).pow(2).flatten(1).mean(1).clamp_min(1e-12)
    return (10 * torch.log10(255.0**2 / mse)).mean().item(), out.double().mean().item()


@pytest.mark.parametrize("name", RANDOM)
def test_random_corruptions_have_the_cpu_statistics(name):
    """CUDA draws other random numbers than the CPU: the mean PSNR and intensity over 512 images
    agree within the golden files' tolerances (0.5 dB, 2 levels; more for fog and frost)."""
    images = photo_batch().repeat(4, 1, 1, 1)
    frost = {"frost": "procedural"} if name == "frost" else {}
    for severity in (1, 3, 5):
        cpu = psnr_and_mean(corrupt(images, name, severity, seed=severity, **frost), images)
        cuda = psnr_and_mean(corrupt(images.cuda(), name, severity, seed=severity, **frost).cpu(), images)
        wide = name in ("fog", "frost")
        assert abs(cpu[0] - cuda[0]) <= (1.0 if wide else 0.5), (name, severity, cpu, cuda)
        assert abs(cpu[1] - cuda[1]) <= (4.0 if wide else 2.0), (name, severity, cpu, cuda)


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_one_gpu_call_over_many_chunks_equals_the_chunks_one_by_one(name):
    """Eval corrupts up to 16 chunks in one GPU call (registry.corrupt_chunks with draws.Streams):
    each chunk must come out as when it is corrupted alone, whatever kernels a larger call picks."""
    from robench.corruptions.registry import corrupt_chunks

    images = photo_batch().repeat(3, 1, 1, 1).cuda()  # 384 images: chunks of 100, the last 84
    frost = {"frost": "procedural"} if name == "frost" else {}
    seeds = [21, 22, 23, 24]
    together = corrupt_chunks(images, name, 3, seeds, chunk=100, **frost)
    alone = torch.cat([corrupt(part, name, 3, seed, **frost) for part, seed in zip(images.split(100), seeds)])
    assert torch.equal(together, alone), name


def test_elastic_and_spatter_equal_the_cpu_given_the_same_draws():
    from robench.corruptions import elastic, spatter

    images = photo_batch(64)
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(64, 32, 32, dtype=torch.float64, generator=g)
    assert torch.equal(spatter.apply(images.cuda(), 2, noise.cuda()).cpu(), spatter.apply(images, 2, noise))
    offsets = (torch.rand(64, 3, 2, generator=g) * 2 - 1) * 1.9
    fields = torch.rand(2, 64, 32, 32, dtype=torch.float64, generator=g) * 2 - 1
    cpu = elastic.apply(images, 3, offsets, fields[0], fields[1])
    cuda = elastic.apply(images.cuda(), 3, offsets.cuda(), fields[0].cuda(), fields[1].cuda()).cpu()
    diff = (cpu.int() - cuda.int()).abs()  # grid_sample's float64 bilinear: CUDA may round an ulp apart
    assert diff.max() <= 1 and (diff == 0).double().mean() >= 0.999


# ----------------------------------------------------------------------------- augmentation


@pytest.mark.parametrize("name", sorted(dispatch.OPS))
def test_every_op_equals_the_cpus_sync_free_path_given_the_same_parameters(name, monkeypatch):
    images = photo_batch(64)
    g = torch.Generator().manual_seed(2)
    op = torch.where(torch.rand(64, generator=g) < 0.7, 0, -1)
    spread = {"posterize": (1, 8), "solarize": (0, 256), "rotate": (-30, 30), "translate_x": (-10, 10),
              "translate_y": (-10, 10)}.get(name, (-0.3, 0.3) if "shear" in name else (0.1, 1.9))
    param = (spread[0] + (spread[1] - spread[0]) * torch.rand(64, generator=g, dtype=torch.float64))
    if name in ("posterize", "solarize", "translate_x", "translate_y", "rotate"):
        param = param.trunc()
    for interpolation in ("nearest", "bilinear"):
        cuda = dispatch.run_slots(images.cuda(), op.cuda(), param.cuda(), [name], interpolation).cpu()
        monkeypatch.setattr(common, "_host", lambda t: False)
        cpu = dispatch.run_slots(images, op, param, [name], interpolation)
        monkeypatch.undo()
        diff = (cuda.int() - cpu.int()).abs()
        # pixel ops are exact; grid_sample on CUDA computes positions with other float32 roundings
        assert diff.max() <= (0 if dispatch.OPS[name].matrix is None else 255), (name, interpolation)
        assert (diff == 0).double().mean() >= (1.0 if dispatch.OPS[name].matrix is None else 0.99), (name, interpolation)


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_every_policy_has_the_cpu_statistics_on_cuda(name):
    """Other random streams on CUDA: the mean absolute change per pixel and the mean intensity of
    1024 augmented images agree with the CPU's within 5 %."""
    images = photo_batch().repeat(8, 1, 1, 1)
    as_float = torch.float32 if name == "augmix" else None
    cpu = make_policy(name)(images, generator=torch.Generator().manual_seed(0), dtype=as_float)
    cuda = make_policy(name)(images.cuda(), generator=torch.Generator("cuda").manual_seed(0), dtype=as_float).cpu()
    base = images.double() / (255 if name == "augmix" else 1)
    change_cpu, change_cuda = (cpu.double() - base).abs().mean(), (cuda.double() - base).abs().mean()
    assert abs(change_cpu - change_cuda) <= 0.05 * change_cpu, (name, change_cpu, change_cuda)
    assert abs(cpu.double().mean() - cuda.double().mean()) <= 0.05 * cpu.double().mean(), name


# ----------------------------------------------------------------------------- training and eval


@pytest.mark.parametrize("options", [dict(policy="standard"), dict(policy="augmix", jsd=True),
                                     dict(policy="randaugment", mix="cutmix"), dict(policy="autoaugment", mix="mixup")],
                         ids=["standard", "augmix-jsd", "randaugment-cutmix", "autoaugment-mixup"])
def test_a_training_step_never_waits_for_the_gpu(options):
    """CUDA's own sync detector raises on any host sync inside the steps (after a warm-up step)."""
    from robench.config import TrainConfig
    from robench.models import build_model
    from robench.train.loop import Step
    from robench.train.optim import make_optimizer

    cfg = TrainConfig(dataset="cifar10", model="small-cnn", **options)
    device = torch.device("cuda")
    model = build_model("small-cnn", 10).to(device).train()
    optimizer = make_optimizer("sgd", model.parameters(), 0.01, 5e-4)
    step = Step(cfg, model, 10, device)
    images = torch.randint(0, 256, (256, 3, 32, 32), dtype=torch.uint8, device=device)
    labels = torch.randint(0, 10, (256,), device=device)

    def one():
        loss, _ = step(images, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    one()  # caches and tables are made on the first call
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            one()
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.parametrize("compile", [False, True], ids=["eager", "compile"])
def test_train_and_eval_on_cuda_with_autocast_and_channels_last(tmp_path, compile):
    from robench.config import EvalConfig, TrainConfig
    from robench.eval.loop import evaluate_run
    from robench.runfolder.files import read_eval_csv
    from robench.train.loop import build, train

    cfg = TrainConfig(dataset="shapes10", model="small-cnn", epochs=2, batch_size=128, train_limit=4000,
                      test_limit=1000, out_dir=str(tmp_path), name="run", device="cuda", policy="augmix", jsd=True,
                      compile=compile).validate()
    run = build(cfg)
    convs = [p for p in run.model.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    x = run.train_split.images[:4].to("cuda").float() / 255
    with torch.autocast("cuda", dtype=torch.bfloat16):
        assert run.forward(x).dtype == torch.bfloat16  # training's forward runs in bf16
    run_dir = train(cfg, overwrite=True, echo=lambda *_: None)
    rows = read_eval_csv(evaluate_run(EvalConfig(str(run_dir), corruptions="gaussian_noise,contrast", severities="3",
                                             source="generated", device="cuda"), echo=lambda *_: None))
    clean = float(rows[0]["error"])
    assert clean < 60, rows  # it learned something in 2 short epochs (10 classes: chance is 90 %)
    if not compile:  # CUDA's fp32 eval counts agree with the CPU's (the same model, 1000 images)
        cpu = read_eval_csv(evaluate_run(EvalConfig(str(run_dir), corruptions="contrast", severities="3",
                                                source="generated", device="cpu"), echo=lambda *_: None))
        cuda_contrast = next(r for r in rows if r["corruption"] == "contrast")
        cpu_contrast = next(r for r in cpu if r["corruption"] == "contrast")
        assert abs(int(cpu[0]["correct"]) - int(rows[0]["correct"])) <= 2
        assert abs(int(cpu_contrast["correct"]) - int(cuda_contrast["correct"])) <= 2
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["compile"] == compile
