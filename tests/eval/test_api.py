"""robench.eval.api, the Python API: `robench.evaluate(model, ...)` returns one row per cell with the
eval CSV's columns (checked against a direct forward pass), and `robench.summarize(frame)` gives
clean error, mCE and calibration.

Data: the embedded shapes10 test split, first N images; a tiny model with seeded random weights.
"""

import math

import pytest
import torch

import robench
from robench.data import load_split

N = 64
pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: thread hand-offs would dominate


@pytest.fixture(scope="module")
def test_split():
    split = load_split("shapes10", False, limit=N)
    return split.images, split.labels


@torch.no_grad()
def direct(model, x, labels):
    """(correct, NLL) of `model` on float input x, computed here without robench."""
    logits = model(x).double()
    return int((logits.argmax(1) == labels).sum()), float(torch.nn.functional.cross_entropy(logits, labels))


def test_torchvision_model_through_the_python_api(test_split, tmp_path):
    torchvision = pytest.importorskip("torchvision")
    images, labels = test_split
    torch.manual_seed(2)
    net = torchvision.models.get_model("resnet18", num_classes=10).eval()
    torch.save(net.state_dict(), tmp_path / "tv.pt")
    cells = robench.evaluate("torchvision:resnet18", dataset="shapes10", corruptions="contrast", severities="1,2",
                             limit=N, device="cpu", checkpoint=str(tmp_path / "tv.pt"), normalize="0.5,0.25")
    assert list(zip(cells.corruption, cells.severity)) == [("clean", 0), ("contrast", 1), ("contrast", 2)]
    assert {"error", "nll", "brier", "ece", "rms_ce"} <= set(cells.columns)
    correct, nll = direct(net, (images.float() / 255 - 0.5) / 0.25, labels)  # --normalize MEAN,STD
    assert int(cells.correct[0]) == correct and cells.nll[0] == pytest.approx(nll, abs=1e-5)
    assert cells.error[0] == pytest.approx(100 * (1 - correct / N), abs=1e-3)


def test_summarize_gives_clean_error_mce_and_calibration():
    rows = [dict(corruption="clean", severity=0, error=5.0, nll=0.2, brier=0.1, ece=0.02, rms_ce=0.03)]
    for i, c in enumerate(robench.CORRUPTIONS):
        for s in range(1, 6):
            rows.append(dict(corruption=c, severity=s, error=float(i + s), nll=0.5, brier=0.3, ece=0.1 * (i < 15),
                             rms_ce=0.2))
    import pandas as pd

    summary = pd.DataFrame(rows).pipe(robench.summarize)
    assert summary["clean_error"] == 5.0 and summary["mCE"] == pytest.approx(7 + 3)
    assert summary["extra_error"] == pytest.approx(16.5 + 3)
    assert summary["c_ece"] == pytest.approx(0.1) and summary["clean_rms_ce"] == 0.03
    assert math.isnan(pd.DataFrame(rows[:-1]).pipe(robench.summarize)["extra_error"])


class _Pooled(torch.nn.Module):
    """A tiny seeded model whose predictions move with the image (so flips and errors are not constant)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.conv = torch.nn.Conv2d(3, 10, 5, stride=4)

    def forward(self, x):
        return self.conv(x).mean((2, 3))


def test_the_api_measures_c_bar_and_p_like_the_engines_direct_output(test_split):
    from robench.corruptions.cbar import generated_bar_batches
    from robench.corruptions.perturbations import generated_sequences
    from robench.eval.perturbation import evaluate_perturbation

    images, labels = test_split
    net = _Pooled().eval()
    bar = robench.evaluate(net, dataset="shapes10", benchmark="cifar10-c-bar", corruptions="lines", severities="2",
                           limit=N, device="cpu")
    assert list(bar.corruption) == ["clean", "lines"] and set(bar.protocol) == {"c-bar"}
    lines = torch.cat([b for _, b in generated_bar_batches(images, "lines", 2, 0, batch_size=500)])
    with torch.no_grad():
        correct = int((net(lines.float() / 255).argmax(1) == labels).sum())
    assert int(bar.correct.iloc[1]) == correct
    p = robench.evaluate(net, dataset="shapes10", benchmark="p", corruptions="translate,brightness", limit=8,
                         device="cpu")
    assert list(p.corruption) == ["brightness", "translate"] and set(p.benchmark) == {"p"}
    with torch.no_grad():
        row = evaluate_perturbation(lambda x: net(x.float() / 255), generated_sequences(images[:8], "translate", 0),
                                    "translate")
    assert p.set_index("corruption").loc["translate", "flip_prob"] == pytest.approx(row["flip_prob"])
    assert p.set_index("corruption").loc["translate", "top5_dist"] == pytest.approx(row["top5_dist"])
