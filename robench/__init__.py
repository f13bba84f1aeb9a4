"""robench: corruption-robustness benchmarking for image classifiers.

    import robench
    robench.CORRUPTIONS                                  # the 19 names, official order
    robench.corrupt(images, "fog", 3, seed=0)            # uint8 or float, a batch or one image
    policy = robench.make_policy("augmix")               # policy(images, generator=g)
    mixer = robench.make_mixer("cutmix", num_classes=10) # mixer(images, labels, generator=g)
    cells = robench.evaluate(model, dataset="cifar10")   # a DataFrame, one row per cell
    cells.pipe(robench.summarize)                        # clean error, mCE, calibration

Names are imported on first use, so `import robench` (and the torch-free modules such as
robench.report) stay light.
"""

__version__ = "0.1.0"

_API = {
    "CORRUPTIONS": "robench.corruptions.protocol",
    "STANDARD": "robench.corruptions.protocol",
    "EXTRA": "robench.corruptions.protocol",
    "SEVERITIES": "robench.corruptions.protocol",
    "corrupt": "robench.corruptions.registry",
    "make_policy": "robench.augment.policies",
    "make_mixer": "robench.augment.mixers",
    "RobenchError": "robench.errors",
    "evaluate": "robench.eval.api",
    "summarize": "robench.eval.api",
}
__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'robench' has no attribute '{name}'")


def __dir__():
    return sorted(list(globals()) + list(_API))
