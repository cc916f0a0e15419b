"""Batch augmentation on the training device with kornia: random crop with padding, horizontal flip,
ImageNet normalisation, random erasing (after normalisation, so erased pixels are the mean)."""

from __future__ import annotations

import kornia.augmentation as K
import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalize(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, H, W) or float in [0, 1] -> normalised float."""
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images
        return (x - self.mean) / self.std


class TrainAugment(nn.Module):
    def __init__(self, size: tuple[int, int], pad: int = 10, flip_p: float = 0.5, erase_p: float = 0.5) -> None:
        super().__init__()
        self.geometric = nn.Sequential(
            *([K.RandomCrop(tuple(size), padding=pad)] if pad > 0 else []),
            *([K.RandomHorizontalFlip(p=flip_p)] if flip_p > 0 else []),
        )
        self.normalize = Normalize()
        self.erase = K.RandomErasing(p=erase_p) if erase_p > 0 else nn.Identity()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images
        x = self.geometric(x)
        return self.erase(self.normalize(x))
