"""`make gpu-check` on a machine without CUDA, what it imports, and its summary."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from locations import ROOT


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: gpu-check would really run")
def test_without_cuda_it_says_so_in_one_line_and_exits_0(tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), str(out)], capture_output=True,
                            text=True, env={**os.environ, "PYTHON": sys.executable}, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1 and "no CUDA device" in result.stdout
    assert not out.exists()  # nothing half-written


def test_nothing_gpu_check_runs_imports_datasets():
    """The GPU machine has no `datasets`: the CUDA tests and the four benchmarks import without it."""
    code = """
import importlib.util, sys
sys.modules["datasets"] = None  # any `import datasets` now fails
sys.path[:0] = ["tests", "."]
for path in ["benchmarks/corruptions.py", "benchmarks/eval_throughput.py", "benchmarks/augment.py",
             "benchmarks/train_step.py", "benchmarks/gpu_summary.py", "tests/runtime/test_cuda.py"]:
    spec = importlib.util.spec_from_file_location(path.replace("/", "_")[:-3], path)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
import robench.cli, robench.train.loop, robench.eval.loop, robench.eval.api, robench.demo, robench.data.csets
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_the_summary_puts_each_figure_next_to_its_target(tmp_path):
    from importlib.util import module_from_spec, spec_from_file_location

    spec = spec_from_file_location("gpu_summary", ROOT / "benchmarks" / "gpu_summary.py")
    gpu_summary = module_from_spec(spec)
    spec.loader.exec_module(gpu_summary)
    write = lambda name, rows: (tmp_path / f"{name}.jsonl").write_text(  # noqa: E731
        "warning: text lines are skipped\n" + "\n".join(json.dumps(r) for r in rows) + "\n")
    write("steps", [{"step": "tests", "exit": 0, "seconds": 50}, {"step": "corruptions", "exit": 1, "seconds": 45}])
    write("corruptions", [{"corruption": "total", "seconds_for_19x5x10000": 3.2}])
    write("eval", [{"bench": "eval_generated", "images": 960000, "seconds": 12.5}])
    write("augment", [{"device": "cuda", "policy": "augmix", "batch": 4096, "batched_images_per_s": 2_000_000,
                       "target_images_per_s": 1_000_000, "torchvision_v2_per_batch_images_per_s": 50_000}])
    write("train_step", [{"bench": "train_step", "setting": "augmix+jsd", "aug_share": 0.25}])
    text = gpu_summary.summary(tmp_path)
    assert "| corruptions | 1 | 45 |" in text and "| total | | 95" in text
    assert "| 3.2 s | under 5 s | met |" in text
    assert "(960,000 images, fp32 logits) | 12.5 s | under 10 s | **missed** |" in text
    assert "2,000,000 img/s (torchvision v2 per batch: 50,000) | over 1,000,000 img/s | met |" in text
    assert "| 25.0 % | under 10 % | **missed** |" in text
