"""Batch samplers of the paper, chosen by name: random, P-K, and P-K mixed with the unidentified crops.

Each yields lists of dataset indices (one list per global batch) and is reseeded per epoch with
``set_epoch``, so a resumed run sees the same batches as an uninterrupted one. Under DDP every rank
draws the same global batches and takes its own share (see ``engine``).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


class _BatchSampler:
    def __init__(self, ids: np.ndarray, batch_size: int, num_instances: int = 4, seed: int = 0) -> None:
        self.ids = np.asarray(ids, dtype=np.int64)  # (N,) person id, -1 = unidentified
        self.batch_size = int(batch_size)
        self.num_instances = int(num_instances)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _rng(self) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch])

    def _order(self, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def _batches(self) -> list[list[int]]:
        order = self._order(self._rng())
        n_full = len(order) // self.batch_size
        if n_full == 0:  # fewer samples than one batch: one short batch rather than none
            return [order.tolist()] if len(order) else []
        return [order[i * self.batch_size:(i + 1) * self.batch_size].tolist() for i in range(n_full)]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        return len(self._batches())

    def _pk_units(self, rng: np.random.Generator) -> list[np.ndarray]:
        """Groups of K crops of one identity; an identity's crops are shuffled and padded (re-drawn)
        to a multiple of K."""
        units = []
        k = self.num_instances
        for pid in np.unique(self.ids[self.ids >= 0]):
            idx = rng.permutation(np.flatnonzero(self.ids == pid))
            short = (-len(idx)) % k
            if short:
                idx = np.concatenate([idx, rng.choice(idx, short, replace=True)])
            units.extend(idx.reshape(-1, k))
        return units


class RandomSampler(_BatchSampler):
    """Every train crop once per epoch in random order (identified or not). The paper's best."""

    def _order(self, rng: np.random.Generator) -> np.ndarray:
        return rng.permutation(len(self.ids))


class PKSampler(_BatchSampler):
    """P identities x K crops per batch, identified crops only (unidentified crops are not used)."""

    def _order(self, rng: np.random.Generator) -> np.ndarray:
        units = self._pk_units(rng)
        if not units:
            return np.zeros(0, dtype=np.int64)
        perm = rng.permutation(len(units))
        return np.concatenate([units[i] for i in perm])


class ShuffleSampler(_BatchSampler):
    """P-K groups of identified crops mixed with the unidentified crops (as single items), shuffled."""

    def _order(self, rng: np.random.Generator) -> np.ndarray:
        units = self._pk_units(rng) + [np.array([i]) for i in np.flatnonzero(self.ids < 0)]
        if not units:
            return np.zeros(0, dtype=np.int64)
        perm = rng.permutation(len(units))
        return np.concatenate([units[i] for i in perm])


SAMPLERS: dict[str, type[_BatchSampler]] = {"random": RandomSampler, "pk": PKSampler, "shuffle": ShuffleSampler}


def create_sampler(name: str, ids: np.ndarray, batch_size: int, num_instances: int = 4, seed: int = 0) -> _BatchSampler:
    try:
        cls = SAMPLERS[name]
    except KeyError:
        raise ValueError(f"unknown sampler {name!r}; valid: {', '.join(SAMPLERS)}") from None
    return cls(ids, batch_size, num_instances, seed)
