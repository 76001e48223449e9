"""The released code's ``--preprocess-fn`` choices as whole-batch torch operations.

Each :class:`Preprocess` turns a uint8 (B, C, H, W) batch into model inputs and targets on the batch's
own device, drawing randomness only from the generator it is given, so that a loader can make every
epoch's augmentation and noise a pure function of (seed, epoch) on CPU and GPU alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

CIFAR10_BAYESBINN_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_BAYESBINN_STD = (0.2023, 0.1994, 0.2010)
CIFAR100_BAYESBINN_MEAN = (0.507, 0.487, 0.441)
CIFAR100_BAYESBINN_STD = (0.267, 0.256, 0.276)
CIFAR_BNEW_MEAN = (125.3 / 255, 123.0 / 255, 113.9 / 255)
CIFAR_BNEW_STD = (63.0 / 255, 62.1 / 255, 66.7 / 255)
MNIST_MEAN = (0.1307,)
MNIST_STD = (0.3081,)


def pad_crop_flip(
    x: torch.Tensor, padding: int = 4, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Per image: zero-pad by ``padding``, take a random crop of the original size, flip left-right
    with probability 1/2. Same distribution as torchvision ``RandomCrop(size, padding, fill=0)`` then
    ``RandomHorizontalFlip()``, done as one gather for the whole batch; works on any dtype."""
    b, c, h, w = x.shape
    dev = x.device
    padded = F.pad(x, (padding, padding, padding, padding)).flatten(2)
    top = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=dev)
    left = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=dev)
    flip = torch.randint(0, 2, (b,), generator=generator, device=dev).bool()
    cols = torch.arange(w, device=dev)
    cols = left[:, None] + torch.where(flip[:, None], cols.flip(0), cols)
    rows = top[:, None] + torch.arange(h, device=dev)
    flat = rows[:, :, None] * (w + 2 * padding) + cols[:, None, :]
    return padded.gather(2, flat.view(b, 1, h * w).expand(b, c, h * w)).view(b, c, h, w)


def to_pm1(x: torch.Tensor) -> torch.Tensor:
    """uint8 -> float32 in [-1, 1] as x/127.5 - 1 (the Keras recipes' map; 0 -> -1, 255 -> 1)."""
    return x.float() / 127.5 - 1.0


def standardize(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 -> (x/255 - mean)/std per channel, i.e. torchvision ``ToTensor`` then ``Normalize``."""
    channels = x.shape[1]
    if len(mean) not in (1, channels) or len(std) != len(mean):
        raise ValueError(
            f"mean/std have {len(mean)}/{len(std)} entries but the batch has {channels} channels"
        )
    m = torch.tensor(mean, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    return (x.float() / 255.0 - m) / s


def clip_noise(x: torch.Tensor, eps: torch.Tensor, std: float) -> torch.Tensor:
    """The denoising AE's corruption clip(x + std*eps, -1, 1) for given standard-normal ``eps``."""
    return (x + std * eps).clamp(-1.0, 1.0)


def add_clipped_noise(
    x: torch.Tensor, std: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """:func:`clip_noise` with fresh eps ~ N(0, 1) per element from ``generator``."""
    eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return clip_noise(x, eps, std)


@dataclass(frozen=True)
class Preprocess:
    """One named pipeline. ``mean``/``std`` None means the [-1, 1] map; ``augment`` applies pad-4 crop
    and flip to training batches only; ``noise_std`` > 0 makes it a denoising task whose inputs are
    noisy on train and eval and whose targets are the clean images instead of the labels."""

    name: str
    augment: bool = False
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    noise_std: float = 0.0

    @property
    def denoising(self) -> bool:
        return self.noise_std > 0

    def __call__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        train: bool,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, targets) for a uint8 batch ``x`` with labels ``y``; ``generator`` must live on
        ``x.device`` (None draws from torch's global generator)."""
        if x.dtype != torch.uint8 or x.dim() != 4:
            raise ValueError(f"expected a uint8 (B, C, H, W) batch, got {x.dtype} {tuple(x.shape)}")
        if train and self.augment:
            x = pad_crop_flip(x, 4, generator)
        clean = to_pm1(x) if self.mean is None else standardize(x, self.mean, self.std)
        if self.denoising:
            return add_clipped_noise(clean, self.noise_std, generator), clean
        return clean, y


PREPROCESS: dict[str, Preprocess] = {
    "resize_and_flip": Preprocess("resize_and_flip", augment=True),
    "AE": Preprocess("AE", noise_std=0.1),
    "pm1": Preprocess("pm1"),
    "mnist_standardize": Preprocess("mnist_standardize", mean=MNIST_MEAN, std=MNIST_STD),
    "bayesbinn_cifar10": Preprocess(
        "bayesbinn_cifar10", augment=True, mean=CIFAR10_BAYESBINN_MEAN, std=CIFAR10_BAYESBINN_STD
    ),
    "bayesbinn_cifar100": Preprocess(
        "bayesbinn_cifar100", augment=True, mean=CIFAR100_BAYESBINN_MEAN, std=CIFAR100_BAYESBINN_STD
    ),
    # The BayesBiNN run files' data_augmentation=false on CIFAR: the same normalisation, no crop
    # or flip.
    "bayesbinn_cifar10_plain": Preprocess(
        "bayesbinn_cifar10_plain", mean=CIFAR10_BAYESBINN_MEAN, std=CIFAR10_BAYESBINN_STD
    ),
    "bayesbinn_cifar100_plain": Preprocess(
        "bayesbinn_cifar100_plain", mean=CIFAR100_BAYESBINN_MEAN, std=CIFAR100_BAYESBINN_STD
    ),
    # Layer-by-layer binarization's CIFAR-10 pipeline: crop and flip, then the same statistics.
    "iterative_cifar10": Preprocess(
        "iterative_cifar10", augment=True, mean=CIFAR10_BAYESBINN_MEAN, std=CIFAR10_BAYESBINN_STD
    ),
    "bnew_cifar": Preprocess("bnew_cifar", augment=True, mean=CIFAR_BNEW_MEAN, std=CIFAR_BNEW_STD),
}
PREPROCESS_ALIASES = {"default": "resize_and_flip"}


def list_preprocess() -> tuple[str, ...]:
    return (*PREPROCESS, *PREPROCESS_ALIASES)


def get_preprocess(name: str) -> Preprocess:
    """The pipeline called ``name`` (``default`` is ``resize_and_flip``, as in the released
    Keras CIFAR code)."""
    key = PREPROCESS_ALIASES.get(name, name)
    if key not in PREPROCESS:
        raise ValueError(
            f"unknown preprocess_fn {name!r}; valid names: {', '.join(list_preprocess())}"
        )
    return PREPROCESS[key]
