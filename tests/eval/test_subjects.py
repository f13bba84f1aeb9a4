"""An external model's cells belong to the weights they were computed with: its fingerprint (the
identity of its eval CSV) holds the --checkpoint file's hash, so a new checkpoint at the same path
is evaluated again instead of reusing the old cells."""

import json
import textwrap

import pytest
import torch

from robench.config import EvalConfig
from robench.eval.loop import evaluate_run
from robench.eval.subjects import model_fingerprint, resolve
from robench.runfolder.files import read_eval_csv

pytestmark = pytest.mark.usefixtures("one_thread")
N = 16
FACTORY = textwrap.dedent("""
    from torch import nn

    def build(num_classes=10):
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, num_classes))
""")


def weights(scale: float) -> dict:
    generator = torch.Generator().manual_seed(0)
    return {"2.weight": scale * torch.randn(10, 3, generator=generator), "2.bias": torch.arange(10.0) * scale}


@pytest.fixture
def factory(tmp_path):
    path = tmp_path / "net.py"
    path.write_text(FACTORY)
    return path


def quiet(line: str) -> None:
    pass


def last_evaluation(csv_path) -> dict:
    """What the latest evaluation recorded in the eval .json computed and skipped."""
    entry = json.loads(csv_path.with_suffix(".json").read_text())["evaluations"][-1]
    return {"computed": entry["computed"], "skipped": entry["skipped"]}


def config(factory, checkpoint, out_dir) -> EvalConfig:
    return EvalConfig(run=f"{factory}:build", checkpoint=str(checkpoint), dataset="shapes10", limit=N,
                      corruptions="none", device="cpu", out_dir=str(out_dir), name="net")


def fingerprint(cfg: EvalConfig) -> str:
    subject = resolve(cfg)
    subject.build(10, torch.zeros(2, 3, 8, 8, dtype=torch.uint8), torch.device("cpu"))
    return model_fingerprint(subject)


def test_the_fingerprint_follows_the_checkpoint_files_contents(factory, tmp_path):
    checkpoint = tmp_path / "weights.pt"
    torch.save(weights(1.0), checkpoint)
    cfg = config(factory, checkpoint, tmp_path / "results")
    first = fingerprint(cfg)
    assert fingerprint(cfg) == first  # the same file: the same fingerprint
    torch.save(weights(2.0), checkpoint)  # new weights at the same path
    assert fingerprint(cfg) != first
    torch.save(weights(1.0), checkpoint)
    assert fingerprint(cfg) == first


def test_a_new_checkpoint_at_the_same_path_is_evaluated_again(factory, tmp_path):
    checkpoint = tmp_path / "weights.pt"
    torch.save(weights(1.0), checkpoint)
    cfg = config(factory, checkpoint, tmp_path / "results")
    out = evaluate_run(cfg, echo=quiet)
    before = read_eval_csv(out)
    evaluate_run(cfg, echo=quiet)
    assert last_evaluation(out) == {"computed": 0, "skipped": 1}  # unchanged: the clean cell is done

    torch.save(weights(-3.0), checkpoint)
    evaluate_run(cfg, echo=quiet)
    assert last_evaluation(out) == {"computed": 1, "skipped": 0}
    after = read_eval_csv(out)
    assert len(after) == 1 and (after[0]["correct"], after[0]["nll"]) != (before[0]["correct"], before[0]["nll"])
