"""RDED's stitching: the ranked patches of a class cut into factor^2 chunks of ipc; chunk k fills cell k of every image."""

from __future__ import annotations

import torch


def mosaic_position(rank: int, ipc: int, factor: int) -> tuple[int, int, int]:
    """Where the patch of a given rank goes: (image index, cell row, cell column); cells in row-major order."""
    cell, image = divmod(rank, ipc)
    if cell >= factor * factor:
        raise ValueError(f"rank {rank} does not fit {ipc} images of {factor}x{factor} cells")
    row, col = divmod(cell, factor)
    return image, row, col


def stitch(patches: torch.Tensor, ipc: int, factor: int) -> torch.Tensor:
    """(ipc * factor^2, c, p, p) ranked best first -> (ipc, c, factor * p, factor * p)."""
    n, c, p, _ = patches.shape
    if n != ipc * factor * factor:
        raise ValueError(f"need {ipc * factor * factor} patches for ipc={ipc}, factor={factor}; got {n}")
    # rank = cell * ipc + image, cell = row * factor + col
    grid = patches.view(factor, factor, ipc, c, p, p)  # (row, col, image, c, y, x)
    return grid.permute(2, 3, 0, 4, 1, 5).reshape(ipc, c, factor * p, factor * p)  # (image, c, row*y, col*x)
