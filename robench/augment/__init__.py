"""Batched augmentation with per-sample randomness: ops, policies and batch mixers.

    policy = make_policy("augmix", base="none")       # RobenchError if unknown or bad
    views = policy(images, generator=g)                # same dtype convention as the input
    mixer = make_mixer("cutmix", num_classes=10)
    images, soft_targets = mixer(images, labels, generator=g)

The accepted inputs and what comes out are in one table in `robench.images`; the definitions
reproduced are in docs/faithfulness.md.
"""

from .dispatch import OPS, run_slots
from .mixers import MIXERS, make_mixer
from .policies import POLICIES, make_policy

__all__ = ["MIXERS", "make_mixer", "OPS", "run_slots", "POLICIES", "make_policy"]
