"""Sampler of per-epoch sample keys for datasets that generate samples on the fly."""

import torch.distributed as dist
from torch.utils.data import DistributedSampler


class EpochKeySampler(DistributedSampler):
    """Yields keys `epoch * total_size + i` for this rank's share of i, so each epoch (and rank) gets new samples.

    A DistributedSampler subclass, so Lightning keeps it under DDP and calls `set_epoch` every epoch.
    Without an initialised process group it acts as a single replica (rank 0).
    """

    def __init__(self, dataset, num_replicas: int | None = None, rank: int | None = None):
        distributed = dist.is_available() and dist.is_initialized()
        if num_replicas is None:
            num_replicas = dist.get_world_size() if distributed else 1
        if rank is None:
            rank = dist.get_rank() if distributed else 0
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False)

    def __iter__(self):
        start = self.epoch * self.total_size
        return iter(range(start + self.rank, start + self.total_size, self.num_replicas))
