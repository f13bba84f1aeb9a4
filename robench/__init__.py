"""robench: corruption-robustness benchmarking for image classifiers."""

__version__ = "0.1.0"
