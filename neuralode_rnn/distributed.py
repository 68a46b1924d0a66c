"""Multi-process data-parallel training on ``torch.distributed`` (DDP), launched by ``torchrun``.

``torchrun --nproc_per_node=N -m neuralode_rnn.cli train ...`` sets RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR and MASTER_PORT; :func:`init_from_env` reads them and joins the process group (gloo
on CPU, NCCL when CUDA is available).  Without them everything here is a no-op for one process.

How a global batch is split: every rank draws the *same* shuffled order (same seed), takes the
same global batch of B samples, and keeps its contiguous slice (``torch.tensor_split`` into
``world_size`` parts).  The per-rank loss is the *sum* over its slice divided by the global
element count and multiplied by ``world_size``; DDP averages gradients over ranks, so the step is
exactly the step of one process on the whole global batch (up to float summation order), even
when the last batch does not split evenly.  Only rank 0 writes the run directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["DistEnv", "all_reduce_sum", "barrier", "init_from_env", "resolve_device", "shard", "shutdown", "wrap"]


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the job: ``rank`` of ``world_size``; ``active`` when distributed."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"
    active: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an int (torchrun sets it); got {raw!r}") from None


def resolve_device(device: str | None = "auto", local_rank: int = 0, name: str = "device") -> str:
    """The torch device a run uses: "auto" (or None) is cuda:``local_rank`` when CUDA is available,
    else "cpu"; "cuda" is cuda:``local_rank``; "cpu" and "cuda:N" are themselves.  A CUDA device
    that this process cannot use is a ValueError saying why (``name``: the argument it names)."""
    if device is None or device == "auto":
        return f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return device
    head, sep, index = device.partition(":")
    if head != "cuda" or (sep and not index.isdigit()):
        raise ValueError(f"{name} must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got {device!r}")
    if not torch.cuda.is_available():
        why = ("this torch is built without CUDA" if torch.version.cuda is None
               else "no CUDA device is visible (driver, CUDA_VISIBLE_DEVICES)")
        raise ValueError(f"{name} {device!r} is not available: {why}; use {name} 'cpu' (or 'auto')")
    n = int(index) if sep else local_rank
    if n >= torch.cuda.device_count():
        raise ValueError(f"{name} {device!r} is not available: this machine has {torch.cuda.device_count()} CUDA "
                         f"device(s), cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    return f"cuda:{n}"


def init_from_env(backend: str | None = None, device: str | None = None) -> DistEnv:
    """Join the process group described by torchrun's environment, or return a 1-process env.

    Args:
        backend: "gloo" or "nccl"; None picks nccl when the device is CUDA, else gloo.
        device: "auto" (or None), "cpu", "cuda" or "cuda:N" (:func:`resolve_device`): None picks
            cuda:LOCAL_RANK when CUDA is available, else cpu.
    """
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local = _env_int("LOCAL_RANK", 0)
    device = resolve_device(device, local)
    if world <= 1:
        return DistEnv(device=device)
    import torch.distributed as dist

    if backend is None:
        backend = "nccl" if device.startswith("cuda") else "gloo"
    if backend not in ("gloo", "nccl"):
        raise ValueError(f"backend must be 'gloo' or 'nccl'; got {backend!r}")
    if device.startswith("cuda"):
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistEnv(rank=rank, world_size=world, local_rank=local, device=device, active=True)


def shard(batch: tuple, env: DistEnv) -> tuple:
    """This rank's contiguous slice of a global batch ``(values, times or None, targets)``."""
    if not env.active:
        return batch
    values, times, targets = batch
    index = torch.tensor_split(torch.arange(values.shape[0]), env.world_size)[env.rank]
    return values[index], None if times is None else times[index], targets[index]


def wrap(model: nn.Module, env: DistEnv) -> nn.Module:
    """``DistributedDataParallel(model)`` when distributed, else the model itself."""
    if not env.active:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [env.local_rank] if env.device.startswith("cuda") else None
    return DistributedDataParallel(model, device_ids=ids)


def all_reduce_sum(tensor: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """Sum ``tensor`` over ranks (in place, returned); identity for one process."""
    if env.active:
        import torch.distributed as dist

        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def barrier(env: DistEnv) -> None:
    if env.active:
        import torch.distributed as dist

        dist.barrier()


def shutdown(env: DistEnv) -> None:
    """Leave the process group (call once, at the end of the job)."""
    if env.active:
        import torch.distributed as dist

        if dist.is_initialized():
            # every rank reaches this point before any tears the group down: a rank that exits
            # while its peer still has gloo traffic in flight aborts it ("terminate called ...")
            dist.barrier()
            dist.destroy_process_group()
