"""Batched augmentation with per-sample randomness: ops, policies and batch mixers.

    policy = make_policy("augmix", base="none")       # RobenchError if unknown or bad
    views = policy(images_uint8, generator=g)          # float32 in [0, 1] for augmix, else uint8
    mixer = make_mixer("cutmix", num_classes=10)
    images, soft_targets = mixer(images, labels, generator=g)

See DESIGN.md for the contracts and reference/augment.md for the definitions reproduced.
"""

from .mixers import MIXERS, make_mixer, mixer_param_specs, mixer_params
from .ops import OPS, run_slots
from .params import Param
from .policies import POLICIES, make_policy, policy_param_specs, policy_params

__all__ = [
    "MIXERS", "make_mixer", "mixer_params", "mixer_param_specs",
    "OPS", "run_slots", "Param",
    "POLICIES", "make_policy", "policy_params", "policy_param_specs",
]
