"""The seed systems' recipes (Keras RandAugment tutorial, CutMix blog, the tricks list): each resolves
to a valid run with the settings its source states. The AugMix paper's recipes are checked in
tests/test_config.py."""

from pathlib import Path

import pytest

from robench.augment import make_policy
from robench.config import TrainConfig, resolve
from robench.train.loop import check_names

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def recipe(name: str) -> TrainConfig:
    cfg = resolve(TrainConfig, RECIPES / f"{name}.yaml", {})
    check_names(cfg)
    assert cfg.name == name
    return cfg


def test_keras_randaugment_tutorial_pair():
    ra, simple = recipe("keras-randaugment-resnetv2-72px"), recipe("keras-simple-resnetv2-72px")
    for cfg in (ra, simple):
        assert (cfg.model, cfg.image_size, cfg.epochs, cfg.batch_size, cfg.optimizer, cfg.lr, cfg.weight_decay) == \
            ("timm:resnetv2_50", 72, 1, 128, "adamw", 1e-3, 0.0)
    assert simple.policy == "simple"
    assert ra.policy == "randaugment" and ra.policy_params["num_ops"] == 3 and ra.policy_params["base"] == "none"
    # magnitude 0.8 of each op's range: bin 8 of 11 equally spaced bins from 0 to the maximum
    bins, m = ra.policy_params["num_magnitude_bins"], ra.policy_params["magnitude"]
    assert m / (bins - 1) == pytest.approx(0.8)
    make_policy("randaugment", **ra.policy_params)


def test_cutmix_blog_keeps_the_larger_part():
    cfg = recipe("cutmix-blog-resnet18")
    assert cfg.mix == "cutmix" and cfg.mix_params == {"alpha": 1.0, "prob": 0.5, "per_sample": False, "keep_larger": True}


@pytest.mark.parametrize("name, expected", [
    ("baseline", {"policy": "standard", "mix": "none", "label_smoothing": 0.0}),
    ("label-smoothing", {"label_smoothing": 0.1}),
    ("ricap", {"mix": "ricap"}),
    ("distillation", {"teacher": "results/tricks-resnet18-baseline", "kd_temperature": 20.0}),
    ("cutout", {"policy": "cutout"}),
    ("mixup", {"mix": "mixup"}),
    ("adabound", {"optimizer": "adabound", "lr": 1e-3}),
    ("autoaugment", {"policy": "autoaugment"}),
])
def test_tricks_list(name, expected):
    cfg = recipe(f"tricks-resnet18-{name}")
    assert cfg.model == "resnet18" and cfg.dataset == "cifar10"
    for key, value in expected.items():
        assert getattr(cfg, key) == value, key
    if name == "ricap":
        assert cfg.mix_params["beta"] == 0.3
