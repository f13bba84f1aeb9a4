"""The 19 CIFAR-10-C corruptions as batched tensor programs.

`corrupt(images, name, severity, seed=0)` corrupts a batch (or one image) on its device; see its
docstring. The names, severities and the seeding of generated C-sets are the protocol
(`robench.corruptions.protocol`, torch-free); the functions are in the registry `FUNCTIONS`.
What is reproduced from the official generator, and every deliberate deviation, is in
docs/faithfulness.md.
"""

from robench.corruptions.protocol import CORRUPTIONS, EXTRA, SEVERITIES, STANDARD

__all__ = ["CORRUPTIONS", "STANDARD", "EXTRA", "SEVERITIES", "FUNCTIONS", "corrupt", "get_corruption"]


def __getattr__(name: str):
    # The engine imports torch; the protocol names above do not, so table tools stay light.
    if name in ("FUNCTIONS", "corrupt", "get_corruption"):
        from robench.corruptions import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'robench.corruptions' has no attribute '{name}'")
