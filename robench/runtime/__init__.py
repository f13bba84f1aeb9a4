"""Where and how computation runs: the device, its precision, and torchrun's process group.

    device.py        which device (`--device auto|cpu|cuda[:i]`), its name in run files, bf16 autocast
                     for training, `full_fp32` for eval, the library versions recorded with results
    distributed.py   torchrun's process group: rank, world size, each rank's share, all-reduce and
                     gather; the single-process identity without torchrun

Both import torch; import the submodule you need.
"""
