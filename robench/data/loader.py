"""The device-resident loader: the whole split as uint8 on the device, batches as index slices."""

from __future__ import annotations

import torch


class DeviceLoader:
    """Yields (images uint8, labels) batches of a split that lives on `device`.

    Each epoch draws a fresh permutation from its own seeded generator, so epoch e's order depends
    only on (seed, e). `drop_last` keeps every training batch the same size (stable BatchNorm and
    compiled graphs); evaluation uses drop_last=False and shuffle=False.
    """

    def __init__(self, images, labels, batch_size: int, device, shuffle: bool = True,
                 drop_last: bool = True, seed: int = 0):
        self.images = images.to(device, non_blocking=True)
        self.labels = labels.to(device, non_blocking=True)
        self.batch_size, self.shuffle, self.drop_last, self.seed = batch_size, shuffle, drop_last, seed
        self.epoch = 0

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
        for b in range(len(self)):
            index = order[b * self.batch_size : (b + 1) * self.batch_size]
            yield self.images[index], self.labels[index]
