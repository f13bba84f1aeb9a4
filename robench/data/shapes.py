"""shapes10: an embedded 10-class 32x32 RGB dataset, drawn procedurally, no download.

Each image is one shape (the class) with a random position, scale, rotation and colour on a
textured background (a colour gradient, oriented stripes and pixel noise). Shapes are drawn at 2x
resolution and box-filtered down, so edges are anti-aliased like photographs. Everything is a pure
function of the seed: the train split uses `seed`, the test split `seed + 1`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from robench.data.registry import Split

CLASSES = ["disk", "square", "triangle", "plus", "ring", "star", "crescent", "heart", "ell", "bar"]
SIZE, SUPERSAMPLE = 32, 2
TRAIN_SIZE, TEST_SIZE = 20_000, 2_000


# Each shape is a membership test on coordinates (x, y) in the shape's own frame, about [-1, 1]^2.
def _disk(x, y):
    return x**2 + y**2 < 0.85**2


def _square(x, y):
    return (x.abs() < 0.72) & (y.abs() < 0.72)


def _triangle(x, y):
    # Equilateral, centred on its centroid: three half-planes.
    return (y > -0.5) & (math.sqrt(3) * x - y < 1.0) & (-math.sqrt(3) * x - y < 1.0)


def _plus(x, y):
    return ((x.abs() < 0.28) & (y.abs() < 0.95)) | ((y.abs() < 0.28) & (x.abs() < 0.95))


def _ring(x, y):
    r2 = x**2 + y**2
    return (r2 < 0.95**2) & (r2 > 0.55**2)


def _star(x, y):
    r, theta = torch.sqrt(x**2 + y**2), torch.atan2(y, x)
    return r < 0.45 + 0.5 * (0.5 + 0.5 * torch.cos(5 * theta)) ** 2


def _crescent(x, y):
    return (x**2 + y**2 < 0.9**2) & ((x - 0.45) ** 2 + y**2 > 0.7**2)


def _heart(x, y):
    # The classic implicit heart curve (x^2 + y^2 - 1)^3 - x^2 y^3 < 0, scaled to the frame.
    x, y = x * 1.25, -y * 1.25 + 0.15
    return (x**2 + y**2 - 1) ** 3 - x**2 * y**3 < 0


def _ell(x, y):
    return ((x > -0.8) & (x < -0.3) & (y.abs() < 0.9)) | ((x > -0.8) & (x < 0.8) & (y > 0.4) & (y < 0.9))


def _bar(x, y):
    return (x.abs() < 0.95) & (y.abs() < 0.25)


SHAPES = [_disk, _square, _triangle, _plus, _ring, _star, _crescent, _heart, _ell, _bar]


def _backgrounds(n: int, g: torch.Generator) -> torch.Tensor:
    """float (n, 3, 32, 32) in [0, 1]: a two-colour gradient, stripes, and noise."""
    coords = (torch.arange(SIZE, dtype=torch.float32) + 0.5) / SIZE - 0.5
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    c0, c1 = torch.rand(n, 3, 1, 1, generator=g), torch.rand(n, 3, 1, 1, generator=g)
    angle = torch.rand(n, 1, 1, generator=g) * 2 * math.pi
    along = (xx * torch.cos(angle) + yy * torch.sin(angle) + 0.5).clamp(0, 1).unsqueeze(1)
    base = c0 + (c1 - c0) * along
    freq = 4 + 10 * torch.rand(n, 1, 1, generator=g)
    stripe_angle = torch.rand(n, 1, 1, generator=g) * math.pi
    phase = torch.rand(n, 1, 1, generator=g) * 2 * math.pi
    stripes = torch.sin(2 * math.pi * freq * (xx * torch.cos(stripe_angle) + yy * torch.sin(stripe_angle)) + phase)
    amplitude = 0.12 * torch.rand(n, 1, 1, 1, generator=g)
    noise = 0.05 * torch.randn(n, 3, SIZE, SIZE, generator=g)
    return (base + amplitude * stripes.unsqueeze(1) + noise).clamp(0, 1)


def _masks(labels: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """float (n, 1, 32, 32) coverage in [0, 1] of each image's shape, anti-aliased."""
    n, fine = labels.shape[0], SIZE * SUPERSAMPLE
    coords = (torch.arange(fine, dtype=torch.float32) + 0.5) / fine * 2 - 1  # [-1, 1]
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    scale = 0.45 + 0.35 * torch.rand(n, 1, 1, generator=g)  # shape radius, fraction of half the image
    shift = (1 - scale).unsqueeze(1) * (2 * torch.rand(n, 2, 1, 1, generator=g) - 1) * 0.9
    angle = torch.rand(n, 1, 1, generator=g) * 2 * math.pi
    cos, sin = torch.cos(angle), torch.sin(angle)
    dx, dy = (xx - shift[:, 0]) / scale, (yy - shift[:, 1]) / scale
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy  # rotate into the shape's frame
    inside = torch.zeros(n, fine, fine, dtype=torch.bool)
    for label, shape in enumerate(SHAPES):  # a loop over classes, not images
        rows = (labels == label).nonzero().squeeze(1)
        if rows.numel():
            inside[rows] = shape(u[rows], v[rows])
    return F.avg_pool2d(inside.float().unsqueeze(1), SUPERSAMPLE)


def _foreground_colours(background: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """A random colour per image, pushed away from the background's mean so the shape stays visible."""
    n = background.shape[0]
    colour = torch.rand(n, 3, 1, 1, generator=g)
    mean = background.mean(dim=(2, 3), keepdim=True)
    gap = colour - mean
    distance = gap.flatten(1).norm(dim=1).view(n, 1, 1, 1)
    too_close = distance < 0.45
    pushed = (mean + gap / distance.clamp_min(1e-6) * 0.45).clamp(0, 1)
    # If pushing along the gap hits the clamp, fall back to the colour opposite the background.
    pushed = torch.where((pushed - mean).flatten(1).norm(dim=1).view(n, 1, 1, 1) < 0.3, 1 - mean.round(), pushed)
    return torch.where(too_close, pushed, colour)


CHUNK = 1024


def generate(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n images uint8 (n, 3, 32, 32) and labels, deterministic in seed.

    Images are drawn in chunks of 1024, each from its own generator and with balanced classes, so
    the first k images are the same whatever n is (a smaller split is a prefix of the full one).
    """
    images = torch.empty(n, 3, SIZE, SIZE, dtype=torch.uint8)
    labels = torch.empty(n, dtype=torch.int64)
    for start in range(0, n, CHUNK):
        g = torch.Generator().manual_seed(seed * 1_000_003 + start // CHUNK)
        chunk = (torch.arange(CHUNK) % len(CLASSES))[torch.randperm(CHUNK, generator=g)]
        background = _backgrounds(CHUNK, g)
        mask = _masks(chunk, g)
        colour = _foreground_colours(background, g)
        image = background * (1 - mask) + colour * mask
        stop = min(n, start + CHUNK)
        images[start:stop] = (image[: stop - start] * 255 + 0.5).clamp(0, 255).to(torch.uint8)
        labels[start:stop] = chunk[: stop - start]
    return images, labels


def load(name: str, train: bool, seed: int = 0, limit: int | None = None, **_options) -> Split:
    full = TRAIN_SIZE if train else TEST_SIZE
    n = min(limit, full) if limit else full
    images, labels = generate(n, seed if train else seed + 1)
    return Split(images, labels, num_classes=len(CLASSES), classes=list(CLASSES), preprocessing="procedural")
