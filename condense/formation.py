"""Multi-formation (partition and expansion): several small images in one image's memory.

IDC (Kim et al., "Dataset Condensation via Efficient Synthetic-Data
Parameterization", ICML 2022) and IDM (Zhao et al., CVPR 2023) store a
synthetic image of size ``H x W`` as a ``factor x factor`` grid of tiles of
size ``H/factor x W/factor``. At use each tile is upsampled back to
``H x W`` and becomes one training image, so ``N`` stored images train a model
on ``N * factor**2`` images for the memory of ``N``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from condense.errors import InvalidSyntheticSetError


# Expansion multiplies the training images by factor**2 (IDC/IDM use 2-4), so
# this is a memory bound, also on factors read from untrusted set files.
MAX_FORMATION_FACTOR = 8


def check_factor(image_size: tuple[int, int], factor: int) -> None:
    """Raise :class:`InvalidSyntheticSetError` unless ``factor`` tiles ``image_size`` exactly."""
    h, w = image_size
    if int(factor) != factor or factor < 1:
        raise InvalidSyntheticSetError(f"formation factor must be a positive integer, got {factor!r}")
    if factor > MAX_FORMATION_FACTOR:
        raise InvalidSyntheticSetError(f"formation factor must be at most {MAX_FORMATION_FACTOR}, got {factor}")
    if h % factor or w % factor:
        raise InvalidSyntheticSetError(f"formation factor {factor} does not divide the image size {h}x{w}")


def expand_formation(
    images: torch.Tensor, labels: torch.Tensor, soft_labels: torch.Tensor | None, factor: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Split every image into ``factor x factor`` tiles and upsample each to full size.

    Differentiable in ``images`` (the distillation loop expands at every step).
    Tiles of one stored image are consecutive in the output, row-major, and
    inherit that image's hard and soft label.

    Returns:
        ``(N * factor**2, C, H, W)`` images, ``(N * factor**2,)`` labels, and the
        soft labels repeated likewise (or ``None``).
    """
    if images.dim() != 4:
        raise InvalidSyntheticSetError(f"images must have rank 4 (N, C, H, W), got shape {tuple(images.shape)}")
    factor = int(factor)
    n, c, h, w = images.shape
    check_factor((h, w), factor)
    if factor == 1:
        return images, labels, soft_labels
    th, tw = h // factor, w // factor
    # (N, C, f, th, f, tw) -> (N, f, f, C, th, tw): tile (i, j) of image k lands at row k*f*f + i*f + j.
    tiles = images.reshape(n, c, factor, th, factor, tw).permute(0, 2, 4, 1, 3, 5).reshape(n * factor * factor, c, th, tw)
    # Bilinear, as IDC's decoder; align_corners=False keeps the tile's extent.
    big = F.interpolate(tiles, size=(h, w), mode="bilinear", align_corners=False)
    reps = factor * factor
    soft = None if soft_labels is None else soft_labels.repeat_interleave(reps, dim=0)
    return big, labels.repeat_interleave(reps, dim=0), soft


def compose_formation(images: torch.Tensor, factor: int) -> torch.Tensor:
    """Pack groups of ``factor**2`` full-size images into one image each (the inverse layout).

    Every image is downsampled to ``H/factor x W/factor`` (area averaging) and
    placed as a tile; IDC/IDM initialise their stored images this way from real data.
    ``images`` must hold a multiple of ``factor**2`` images, consecutive per stored image.
    """
    factor = int(factor)
    m, c, h, w = images.shape
    check_factor((h, w), factor)
    reps = factor * factor
    if m % reps:
        raise InvalidSyntheticSetError(f"{m} images cannot be packed {reps} to an image")
    small = F.adaptive_avg_pool2d(images, (h // factor, w // factor))
    n = m // reps
    th, tw = h // factor, w // factor
    return small.reshape(n, factor, factor, c, th, tw).permute(0, 3, 1, 4, 2, 5).reshape(n, c, h, w)
