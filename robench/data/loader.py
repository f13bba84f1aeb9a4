"""The device-resident loader: the whole split as uint8 on the device, batches as index slices."""

from __future__ import annotations

import torch


class DeviceLoader:
    """Yields (images uint8, labels) batches of a split that lives on `device`.

    Each epoch draws a fresh permutation from its own seeded generator, so epoch e's order depends
    only on (seed, e). `drop_last` keeps every training batch the same size (stable BatchNorm and
    compiled graphs); evaluation uses drop_last=False and shuffle=False.

    Under torchrun every rank holds the whole split, draws the same permutation and takes its
    share of each batch (`batch_size` is the global batch), so the images of step k are those of a
    one-process run. `resume(epoch, position)` makes the next pass epoch `epoch`'s order from batch
    `position` on, for a run continued from a mid-epoch checkpoint.
    """

    def __init__(self, images, labels, batch_size: int, device, shuffle: bool = True,
                 drop_last: bool = True, seed: int = 0, rank: int = 0, world_size: int = 1):
        self.images = images.to(device, non_blocking=True)
        self.labels = labels.to(device, non_blocking=True)
        self.batch_size, self.shuffle, self.drop_last, self.seed = batch_size, shuffle, drop_last, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start = 0, 0

    def resume(self, epoch: int, position: int) -> None:
        """The next pass is the `epoch`-th (0-based) and starts at batch `position`."""
        self.epoch, self.start = epoch, position

    def __len__(self) -> int:
        n = self.images.shape[0]
        # A split smaller than one batch still gives one (short) batch.
        return max(1, n // self.batch_size) if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n = self.images.shape[0]
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(n, generator=generator).to(self.images.device)
        else:
            order = torch.arange(n, device=self.images.device)
        self.epoch += 1
        start, self.start = self.start, 0
        for b in range(start, len(self)):
            index = order[b * self.batch_size : (b + 1) * self.batch_size]
            if self.world_size > 1:
                n = index.shape[0]
                index = index[n * self.rank // self.world_size : n * (self.rank + 1) // self.world_size]
            yield self.images[index], self.labels[index]
