"""Seeded k-means in torch: k-means++ initialisation, then Lloyd iterations.

Distances are computed in chunks of rows (``||x||^2 - 2 x.c + ||c||^2``), so memory stays at
``chunk x K`` floats whatever the number of frames. Empty clusters are re-seeded with the points
farthest from their centroid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor
from tqdm import tqdm

__all__ = ["KMeansResult", "kmeans_plus_plus", "fit_kmeans", "nearest_centroid"]

_CHUNK_ROWS = 16384


@dataclass
class KMeansResult:
    """Fitted clustering.

    Attributes:
        centroids: ``[K, D]`` float32.
        inertia: mean squared distance of the points to their centroid at the end.
        iterations: Lloyd iterations run.
    """

    centroids: Tensor
    inertia: float
    iterations: int


def nearest_centroid(points: Tensor, centroids: Tensor) -> tuple[Tensor, Tensor]:
    """Index of the nearest centroid for every point.

    Args:
        points: ``[N, D]``.
        centroids: ``[K, D]``.

    Returns:
        (``[N]`` int64 indices, ``[N]`` float32 squared distances).
    """
    points = points.float()
    centroids = centroids.float()
    centroid_norms = centroids.pow(2).sum(1)
    indices, distances = [], []
    for start in range(0, points.shape[0], _CHUNK_ROWS):
        chunk = points[start : start + _CHUNK_ROWS]
        # ||c||^2 - 2 x.c ranks centroids like the full distance; ||x||^2 is added to the winner only
        partial = torch.addmm(centroid_norms, chunk, centroids.T, alpha=-2.0)
        best, index = partial.min(dim=1)
        indices.append(index)
        distances.append((best + chunk.pow(2).sum(1)).clamp_(min=0.0))
    if not indices:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0)
    return torch.cat(indices), torch.cat(distances)


def kmeans_plus_plus(points: Tensor, num_clusters: int, generator: torch.Generator) -> Tensor:
    """k-means++ seeding: each next centroid is drawn with probability proportional to D(x)^2.

    Args:
        points: ``[N, D]`` float32 with ``N >= num_clusters``.

    Returns:
        ``[num_clusters, D]`` initial centroids.
    """
    n = points.shape[0]
    norms = points.pow(2).sum(1)

    def squared_distances_to(index: int) -> Tensor:  # one matrix-vector product per new centroid
        return (norms - 2.0 * (points @ points[index]) + norms[index]).clamp_(min=0.0)

    chosen = [int(torch.randint(n, (1,), generator=generator))]
    closest = squared_distances_to(chosen[0])
    for _ in range(1, num_clusters):
        total = float(closest.sum())
        if total <= 0.0:  # every point coincides with a centroid: pick any unused point
            unused = torch.ones(n, dtype=torch.bool)
            unused[torch.tensor(chosen)] = False
            candidates = unused.nonzero().squeeze(1)
            index = int(candidates[torch.randint(len(candidates), (1,), generator=generator)])
        else:
            index = int(torch.multinomial(closest / total, 1, generator=generator))
        chosen.append(index)
        torch.minimum(closest, squared_distances_to(index), out=closest)
    return points[torch.tensor(chosen)].clone()


def fit_kmeans(
    points: Tensor,
    num_clusters: int,
    *,
    seed: int = 1,
    max_iterations: int = 50,
    tolerance: float = 1e-4,
    init_sample: Optional[int] = None,
    progress: bool = True,
) -> KMeansResult:
    """Cluster ``points`` into ``num_clusters`` groups.

    Args:
        points: ``[N, D]`` (converted to float32), ``N >= num_clusters``.
        num_clusters: K.
        seed: seeds every random choice.
        max_iterations: upper bound on Lloyd iterations.
        tolerance: stop when the inertia improves by less than this fraction.
        init_sample: run k-means++ on a random subset of this many points (default
            ``min(N, 40 K)``): the seeding is memory-bound and does not need every frame.
        progress: show a progress bar over the iterations.

    Raises:
        ValueError: fewer points than clusters, or non-finite points.
    """
    points = points.float().contiguous()
    n, dim = points.shape
    if num_clusters < 1:
        raise ValueError(f"num_clusters must be positive, got {num_clusters}")
    if n < num_clusters:
        raise ValueError(f"k-means needs at least as many frames as clusters: {n} frames for K={num_clusters}")
    if not torch.isfinite(points).all():
        raise ValueError("k-means input contains NaN or inf")
    generator = torch.Generator().manual_seed(int(seed))
    sample_size = min(n, init_sample or 40 * num_clusters)
    sample = points if sample_size == n else points[torch.randperm(n, generator=generator)[:sample_size]]
    centroids = kmeans_plus_plus(sample, num_clusters, generator)

    previous = float("inf")
    inertia = float("inf")
    iteration = 0
    bar = tqdm(range(max_iterations), desc=f"k-means K={num_clusters}", unit="it", disable=not progress, leave=False)
    for iteration in bar:
        assignment, distances = nearest_centroid(points, centroids)
        inertia = float(distances.mean())
        sums = torch.zeros(num_clusters, dim).index_add_(0, assignment, points)
        counts = torch.bincount(assignment, minlength=num_clusters)
        empty = (counts == 0).nonzero().squeeze(1)
        centroids = sums / counts.clamp(min=1).unsqueeze(1).float()
        if len(empty):
            # re-seed empty clusters with the worst-served points
            farthest = distances.topk(min(len(empty), n)).indices
            centroids[empty[: len(farthest)]] = points[farthest]
        bar.set_postfix(inertia=f"{inertia:.4g}")
        if len(empty) == 0 and previous < float("inf") and previous - inertia <= tolerance * previous:
            break
        previous = inertia
    bar.close()
    _, distances = nearest_centroid(points, centroids)
    return KMeansResult(centroids.contiguous(), float(distances.mean()), iteration + 1)
