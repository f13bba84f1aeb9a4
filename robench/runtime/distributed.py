"""torchrun's process group, for every verb that can run on many processes.

`torchrun --nproc-per-node K -m robench ...` starts K copies of the command with RANK, WORLD_SIZE,
LOCAL_RANK and the rendezvous address in their environment. `init` joins the group once (nccl
when the ranks use CUDA, gloo on the CPU) and gives each rank its device (cuda:LOCAL_RANK). Without
torchrun's variables nothing is initialised and every helper below is the single-process identity
(rank 0 of 1), so callers never need two code paths.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from robench.errors import RobenchError
from robench.runtime.device import resolve_device


def launched() -> bool:
    """True when this process was started by torchrun (or another launcher setting its variables)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0))


def is_main() -> bool:
    """Rank 0: the one process that writes files and prints."""
    return rank() == 0


def init(device: str = "auto") -> torch.device:
    """This rank's device for the requested --device; under torchrun also joins the process group
    (once). CUDA ranks use cuda:LOCAL_RANK, so --device cuda and auto mean "this rank's GPU"."""
    if not launched():
        return resolve_device(device)
    use_cuda = device != "cpu" and torch.cuda.is_available()
    if device.startswith("cuda") and not use_cuda:
        raise RobenchError(f"--device {device} asked for, but no CUDA device is available; use --device cpu")
    if use_cuda:
        torch.cuda.set_device(local_rank())
    if not active():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return torch.device("cuda", local_rank()) if use_cuda else torch.device("cpu")


def shutdown() -> None:
    if active():
        dist.destroy_process_group()


def barrier() -> None:
    if active():
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` summed over the ranks, in place (and returned)."""
    if active():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_max(tensor: torch.Tensor) -> torch.Tensor:
    if active():
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor


def broadcast_(tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Rank `src`'s `tensor` copied into every rank's, in place."""
    if active():
        dist.broadcast(tensor, src=src)
    return tensor


def all_gather_objects(obj) -> list:
    """Every rank's `obj` (picklable), in rank order, on every rank."""
    if not active():
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj, src: int = 0):
    """Rank `src`'s `obj` on every rank."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def share(n: int, rank_: int | None = None, world: int | None = None) -> slice:
    """Rank `rank_`'s contiguous share of n items (sizes differ by at most one; ranks in order)."""
    rank_ = rank() if rank_ is None else rank_
    world = world_size() if world is None else world
    return slice(n * rank_ // world, n * (rank_ + 1) // world)


def rank_seed(seed: int, rank_: int) -> int:
    """The seed of rank `rank_`'s own random streams: rank 0 keeps `seed`, so a one-process run draws
    what it always drew; other ranks get distinct streams derived from (seed, rank)."""
    return seed if rank_ == 0 else (seed * 1_000_003 + rank_ * 7_919) % (2**63)
