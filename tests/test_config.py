"""robench.config: a YAML config supplies defaults and flags override it; every shipped AugMix-paper
recipe resolves to a valid run; train options that cannot go together (or are out of range) are
one-line errors that write nothing. (Malformed config files, unknown keys and wrong types are cases
of the catalogue in tests/test_bad_inputs.py.)"""

from pathlib import Path

import pytest
import yaml
from cli_calls import TINY, invoke, one_line_error


def test_config_yaml_supplies_defaults_and_flags_override(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("dataset: shapes10\nmodel: small-cnn\nepochs: 5\nbatch-size: 64\ntrain_limit: 128\ntest_limit: 50\nlabel_smoothing: 0.1\n")
    result = invoke("train", "--config", recipe, "--epochs", "1", "--out-dir", tmp_path, "--name", "r")
    assert result.exit_code == 0, result.output
    config = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())
    assert config["epochs"] == 1 and config["label_smoothing"] == 0.1 and config["batch_size"] == 64


def test_every_recipe_resolves_to_a_valid_run():
    from robench.config import TrainConfig, resolve
    from robench.train.loop import check_names

    recipes = sorted(Path(__file__).resolve().parents[1].glob("recipes/augmix-paper-*.yaml"))
    assert len(recipes) == 8
    for recipe in recipes:
        cfg = resolve(TrainConfig, recipe, {})
        check_names(cfg)
        assert (cfg.model, cfg.epochs, cfg.batch_size, cfg.lr, cfg.weight_decay) == ("wrn-40-2", 100, 128, 0.1, 5e-4)
    augmix = resolve(TrainConfig, recipes[[r.name for r in recipes].index("augmix-paper-wrn40-2-augmix.yaml")], {})
    assert augmix.jsd and augmix.policy == "augmix"


@pytest.mark.parametrize("args, message", [
    (["--policy", "augmix", "--jsd", "--mix", "mixup"], "--jsd cannot be combined with --mix"),
    (["--policy", "randaugment", "--policy-param", "magnitude=-3"], "magnitude"),
    (["--policy-param", "oops"], "expects KEY=VALUE"),
    (["--mix", "blend"], "unknown mixer 'blend'"),
    (["--optimizer", "lion"], "unknown optimizer 'lion'"),
    (["--label-smoothing", "1.5"], "--label-smoothing must be in [0, 1)"),
])
def test_invalid_training_combinations(args, message, tmp_path):
    one_line_error(invoke("train", *TINY, *args, "--out-dir", tmp_path, "--name", "bad"), message)
    assert not (tmp_path / "bad").exists()
