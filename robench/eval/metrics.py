"""What a model gets right and how well it knows it: top-1 counts (training's test error) and the
per-cell accuracy and calibration of eval (error, NLL, Brier, ECE, RMS calibration error).

Everything is accumulated on the device from the logits of the one forward pass; the host reads a
cell's numbers once, when the cell is done. The definitions are in docs/metrics.md.
"""

from __future__ import annotations

import math

import torch

from robench.runtime.device import full_fp32

ECE_BINS = 15  # equal-width confidence bins of the ECE (Guo et al. 2017; torchmetrics' default)
RMS_BIN_SIZE = 100  # images per adaptive bin of the RMS calibration error (Hendrycks et al.)


@torch.no_grad()
def correct_on_device(model, images: torch.Tensor, labels: torch.Tensor, batch_size: int, device) -> torch.Tensor:
    """Top-1 correct predictions of `model` over `images` (uint8 or float in [0, 1]), in batches
    moved to `device`, as a 0-dim tensor on the device (nothing is read back).

    The logits are computed in float32 at full precision, also under a caller's autocast and with
    TF32 allowed: a bf16 (or TF32) argmax resolves near-ties differently, so error rates on a GPU
    would not be comparable with the CPU's."""
    device = torch.device(device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    with torch.autocast(device.type, enabled=False), full_fp32():
        for start in range(0, images.shape[0], batch_size):
            batch = images[start:start + batch_size].to(device, non_blocking=True)
            predictions = model(batch).float().argmax(1)
            correct += (predictions == labels[start:start + batch_size].to(device)).sum()
    return correct


def count_correct(model, images: torch.Tensor, labels: torch.Tensor, batch_size: int, device) -> int:
    """`correct_on_device` read back: one host sync per call."""
    return int(correct_on_device(model, images, labels, batch_size, device))


class CellMetrics:
    """Accumulates one eval cell from (logits, labels) batches, on the device, with no host sync.

    The state is a dict of device tensors (`state()`), so that sharded evaluation can combine the
    shards' states before `compute`: the sums (n, correct, nll, brier and the ECE bins' count,
    confidence and correct sums) are added (all-reduce), the per-image tensors (`confidence`,
    `hit`, and `prediction` when kept) are concatenated (all-gather). `compute(state)` then reads
    the host once.
    """

    SUMS = ("n", "correct", "nll", "brier", "bin_count", "bin_confidence", "bin_correct")
    PER_IMAGE = ("confidence", "hit", "prediction")

    def __init__(self, device, keep_predictions: bool = False):
        device = torch.device(device)
        self.n = 0  # known on the host: no sync to count images
        # Packed so that a batch costs few kernels: totals = (correct, nll, brier) sums; bins = the
        # 15 ECE bins' (count, confidence sum, correct sum).
        self.totals = torch.zeros(3, dtype=torch.float64, device=device)
        self.bins = torch.zeros(ECE_BINS, 3, dtype=torch.float64, device=device)
        self.per_image: dict[str, list[torch.Tensor]] = {"confidence": [], "hit": []}
        if keep_predictions:
            self.per_image["prediction"] = []
        # Inner edges of the 15 equal-width bins: bin b holds confidences in [b/15, (b+1)/15), the
        # last one [14/15, 1] (a confidence of exactly 1 joins it rather than getting a bin of its own).
        self.edges = torch.linspace(0, 1, ECE_BINS + 1, device=device)[1:-1]

    @torch.no_grad()
    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        logits = logits.float()  # calibration needs full-precision probabilities (bf16 forward on CUDA)
        labels = labels.to(logits.device)
        log_p = torch.log_softmax(logits, dim=1)
        log_p_true = log_p.gather(1, labels[:, None]).squeeze(1)
        p = log_p.exp()
        confidence, prediction = p.max(dim=1)
        hit = prediction == labels
        hit_f = hit.float()
        # Brier = sum_k (p_k - y_k)^2 = sum_k p_k^2 - 2 p_y + 1
        brier = p.square().sum(1) - 2 * log_p_true.exp() + 1
        self.totals += torch.stack([hit_f.sum(), -log_p_true.sum(), brier.sum()]).double()
        bins = torch.bucketize(confidence, self.edges, right=True)
        self.bins.index_add_(0, bins, torch.stack([torch.ones_like(hit_f), confidence, hit_f], 1).double())
        self.n += labels.shape[0]
        self.per_image["confidence"].append(confidence)
        self.per_image["hit"].append(hit)
        if "prediction" in self.per_image:
            self.per_image["prediction"].append(prediction)

    def state(self) -> dict[str, torch.Tensor]:
        """The sums and the per-image tensors (in the order the images were given)."""
        device = self.totals.device
        empty = {"confidence": torch.float32, "hit": torch.bool, "prediction": torch.long}
        per_image = {k: torch.cat(v) if v else torch.empty(0, dtype=empty[k], device=device)
                     for k, v in self.per_image.items()}
        sums = {"n": torch.tensor(float(self.n), dtype=torch.float64, device=device), "correct": self.totals[0],
                "nll": self.totals[1], "brier": self.totals[2], "bin_count": self.bins[:, 0],
                "bin_confidence": self.bins[:, 1], "bin_correct": self.bins[:, 2]}
        return {**sums, **per_image}

    def result(self) -> dict:
        return compute(self.state())


def rms_calibration_error(confidence: torch.Tensor, hit: torch.Tensor, bin_size: int = RMS_BIN_SIZE) -> torch.Tensor:
    """The AugMix paper's RMS calibration error, as Hendrycks' calibration code computes it: sort
    by confidence, cut into bins of `bin_size` images (the last bin takes the remainder), and take
    sqrt(sum_b |B_b|/n (mean conf_b - mean correct_b)^2) over every bin but the last, which that
    code leaves out of the sum. NaN with fewer than 2 bins (under 2 * bin_size images).
    A device tensor (no host read)."""
    n = confidence.shape[0]
    bins = n // bin_size
    if bins < 2:
        return torch.tensor(float("nan"), dtype=torch.float64, device=confidence.device)
    order = torch.sort(confidence, stable=True).indices  # stable: ties keep the images' order
    used = (bins - 1) * bin_size  # the reference's loop stops before the last bin
    conf = confidence[order[:used]].double().view(bins - 1, bin_size).mean(1)
    acc = hit[order[:used]].double().view(bins - 1, bin_size).mean(1)
    return (bin_size / n * (conf - acc).square().sum()).sqrt()


def compute(state: dict[str, torch.Tensor]) -> dict:
    """A cell's numbers from its (combined) state, read from the device once: n, correct and
    error, nll, brier, ece, rms_ce as fractions (the error too: 0.25 = 25 %)."""
    n = state["n"]
    # sum_b |B_b|/n |mean conf_b - accuracy_b| = sum_b |sum conf_b - sum correct_b| / n
    ece = (state["bin_confidence"] - state["bin_correct"]).abs().sum() / n.clamp_min(1)
    rms = rms_calibration_error(state["confidence"], state["hit"])
    values = torch.stack([n, state["correct"], state["nll"] / n, state["brier"] / n, ece, rms]).tolist()
    n_, correct, nll, brier, ece_, rms_ = values
    n_, correct = int(round(n_)), int(round(correct))
    return {"n": n_, "correct": correct, "error": 1 - correct / n_ if n_ else math.nan,
            "nll": nll, "brier": brier, "ece": ece_, "rms_ce": rms_}
