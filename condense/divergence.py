"""Stop a run whose synthetic images diverged, instead of saving noise.

A step size too large for the data makes gradient- and trajectory-matching
images blow up within a few steps (values in the hundreds where the
normalized data lies within a few units). Such a set trains nothing, yet it
would be saved and evaluated without a word. :func:`check_not_diverged` is
called by the loop on the finished images; it raises :class:`DivergedError`
when they hold non-finite values or when their largest per-image RMS is
:data:`RMS_LIMIT` times the largest of the real data's.
"""

from __future__ import annotations

import torch

from condense.errors import CondenseError

# Far above anything a working run reaches: measured on digits and MNIST, the sets of every
# method at its defaults stay under 4x the largest real image's RMS; diverged ones pass 100x.
RMS_LIMIT = 20.0


class DivergedError(CondenseError):
    """The synthetic images of a run are non-finite or far outside the range of the data."""


def image_rms(images: torch.Tensor) -> torch.Tensor:
    """Root mean square of each image, ``(N,)``."""
    return images.detach().float().reshape(images.shape[0], -1).pow(2).mean(1).sqrt()


def check_not_diverged(method: str, images: torch.Tensor, real_images: torch.Tensor, limit: float = RMS_LIMIT) -> None:
    """Raise :class:`DivergedError` if ``images`` (normalized, like ``real_images``) diverged.

    ``real_images`` may be a sample of the real data; only its largest per-image RMS is read.
    """
    if images.numel() == 0:
        return
    if not torch.isfinite(images).all():
        raise DivergedError(
            f"{method}: the synthetic images hold NaN or infinite values: the optimisation diverged "
            "(try a smaller lr_img, or init='real'); nothing was saved"
        )
    reference = float(image_rms(real_images).max().clamp_min(1e-6))
    worst = float(image_rms(images).max())
    if worst > limit * reference:
        raise DivergedError(
            f"{method}: the synthetic images diverged (largest RMS {worst:.3g}, {worst / reference:.0f}x the real "
            f"data's {reference:.3g}): try a smaller lr_img; nothing was saved"
        )
