"""elastic_transform: a random affine warp, then a smooth random displacement field, batched.

What the generator does at 32x32 (float32 image in [0, 1]):
1. Random affine: three fixed points, each moved by U(-a, a) per coordinate (float32), solved into
   a 2x3 matrix by cv2.getAffineTransform (a 6x6 linear system, in double); cv2.warpAffine with
   INTER_LINEAR and BORDER_REFLECT_101. OpenCV inverts the matrix and walks the destination grid
   in fixed point: source positions are rounded to 1/32 px
   (`AB_BITS = 10`, `INTER_BITS = 5`), and a float image is interpolated with the exact float32
   weights of those 1/32 steps, summed in the order w00, w01, w10, w11.
2. Displacements: `dx = float32(gaussian(U(-1, 1, (H, W)), sigma, mode='reflect', truncate=3) * alpha)`
   and the same for dy (a second draw); severity 1 has alpha = sigma = 0, so it is the affine alone.
3. `scipy.ndimage.map_coordinates(image, (y + dy, x + dx, c), order=1, mode='reflect')`: bilinear
   in double on the half-sample symmetric extension, cast to float32 (here: grid_sample in float64
   with 'reflection' padding, the same function). Note the two border rules (reflect-101 for the
   warp, half-sample symmetric here), kept as in the generator.
4. `clip(., 0, 1) * 255` in float32, truncated to uint8.
All of this is reproduced, including the fixed-point positions, so given the same draws the result
equals the generator's (checked bit for bit against OpenCV 4.10 and SciPy 1.13 during development)
up to rare last-bit differences in the affine solve and the Gaussian filter's summation order.

Protocols: each generator writes its parameters as a base size times factors (FACTORS_TABLE):
32 (CIFAR-10-C), 64 (Tiny-ImageNet-C) and 244 for ImageNet-C, whose script says 244 where 224 was
meant; the released data was made with 244, so it is kept; 360 for the 299-px ImageNet-C
(make_imagenet_c_inception.py: ImageNet-C's factors, base 360 as written). Each protocol's factors are its own
(ImageNet-C's sigma reaches 0.7 * 244 = 170.8 px, wider than the image: scipy's reflect mode
reflects again and again, and so does the filter matrix here). "scaled" is robench's own: CIFAR's
factors with the base min(H, W). The three affine points are placed as the generator places them
(centre +- min(H, W) // 3) in every protocol.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F

from robench.corruptions import draws
from robench.corruptions._ops import exact_div, gaussian_filter_2d
from robench.corruptions.protocol import pick
from robench.corruptions.registry import FUNCTIONS

# (alpha, sigma, affine jitter) as factors of a base size (BASE_SIZE), per protocol; base * factor
# is computed as the generators compute it, so the floats are theirs ("scaled" reads cifar10-c's).
FACTORS_TABLE = {
    "cifar10-c": ((0.0, 0.0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03)),
    "tiny-imagenet-c": ((0.0, 0.0, 0.08), (0.05, 0.3, 0.06), (0.1, 0.08, 0.06), (0.1, 0.03, 0.03), (0.16, 0.03, 0.02)),
    "imagenet-c": ((2.0, 0.7, 0.1), (2.0, 0.08, 0.2), (0.05, 0.01, 0.02), (0.07, 0.01, 0.02), (0.12, 0.01, 0.02)),
    "imagenet-c-299": ((2.0, 0.7, 0.1), (2.0, 0.08, 0.2), (0.05, 0.01, 0.02), (0.07, 0.01, 0.02), (0.12, 0.01, 0.02)),
}
# The generators' IMSIZE; ImageNet-C's script multiplies by 244 (sic: 224 was meant, the released
# data has 244); its 299-px sibling (make_imagenet_c_inception.py) hard-codes 360 with the same
# factors. "scaled" uses min(H, W).
BASE_SIZE = {"cifar10-c": 32, "tiny-imagenet-c": 64, "imagenet-c": 244, "imagenet-c-299": 360}

# OpenCV warpAffine's fixed point: positions in 1/1024 px, rounded to 1/32 px for interpolation.
AB_BITS, INTER_BITS = 10, 5
INTER_TAB_SIZE = 1 << INTER_BITS


def affine_points(h: int, w: int) -> list[list[float]]:
    """The generator's three source points (as float32 values): centre + s, (c0 + s, c1 - s), centre - s,
    with centre = (H // 2, W // 2) and s = min(H, W) // 3; OpenCV reads each pair as (x, y)."""
    c0, c1, s = float(h // 2), float(w // 2), float(min(h, w) // 3)
    return [[c0 + s, c1 + s], [c0 + s, c1 - s], [c0 - s, c1 - s]]


@lru_cache(maxsize=None)
def _source_inverse(h: int, w: int) -> torch.Tensor:
    """inv([[x_i, y_i, 1]]) of the three source points, float64 (fixed per image size)."""
    points = torch.tensor(affine_points(h, w), dtype=torch.float64)
    return torch.linalg.inv(torch.cat([points, torch.ones(3, 1, dtype=torch.float64)], 1))


def get_affine_transform(dst: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """cv2.getAffineTransform(affine_points(h, w), dst) for a batch dst (n, 3, 2) -> (n, 6) float64,
    rows (m0, m1, m2) and (m3, m4, m5) mapping source (x, y, 1) to destination x and y. OpenCV solves
    the 6x6 system with LAPACK (its wheels bundle OpenBLAS), so the matrix may differ from this one
    in the last bit; that moved none of the 1/32-px sample positions on 640 golden image-severities."""
    inverse = _source_inverse(h, w).to(dst.device)
    return (dst.to(torch.float64).transpose(1, 2) @ inverse.T).reshape(-1, 6)


def _reflect101(index: torch.Tensor, size: int) -> torch.Tensor:
    """OpenCV BORDER_REFLECT_101 (gfedcb|abcdefgh|gfedcba) for any integer index."""
    last = size - 1
    if last == 0:
        return torch.zeros_like(index)
    return last - (last - index.remainder(2 * last)).abs()


def warp_affine(image: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """cv2.warpAffine(image, M, (W, H), INTER_LINEAR, BORDER_REFLECT_101) for float32 (n, C, H, W)
    and forward matrices m (n, 6) float64, with OpenCV's fixed-point positions and float weights."""
    n, c, h, w = image.shape
    m0, m1, m2, m3, m4, m5 = m.unbind(1)
    # Invert the forward matrix exactly as OpenCV does (destination -> source).
    det = m0 * m4 - m1 * m3
    det = torch.where(det != 0, 1.0 / det, torch.zeros_like(det))
    i0, i4 = m4 * det, m0 * det
    i1, i3 = m1 * -det, m3 * -det
    i2 = -i0 * m2 - i1 * m5
    i5 = -i3 * m2 - i4 * m5
    scale = 1 << AB_BITS
    xs = torch.arange(w, dtype=torch.float64, device=image.device)
    ys = torch.arange(h, dtype=torch.float64, device=image.device)
    # adelta[x] = round(M0 * x * 1024); X0(y) = round((M1 * y + M2) * 1024) + 16 (round half to
    # even, as cvRound); then positions in 1/32 px. int32 as in OpenCV (and faster than int64).
    adelta = (i0[:, None] * xs * scale).round().int()
    bdelta = (i3[:, None] * xs * scale).round().int()
    half = scale // INTER_TAB_SIZE // 2
    x0 = ((i1[:, None] * ys + i2[:, None]) * scale).round().int() + half
    y0 = ((i4[:, None] * ys + i5[:, None]) * scale).round().int() + half
    shift = AB_BITS - INTER_BITS
    fx = (x0[:, :, None] + adelta[:, None, :]) >> shift  # (n, H, W) in 1/32 px
    fy = (y0[:, :, None] + bdelta[:, None, :]) >> shift
    col, row = fx >> INTER_BITS, fy >> INTER_BITS
    # Exact float32 weights of the 1/32 steps: (1 - f, f) per axis, their products per corner.
    tx = ((fx & (INTER_TAB_SIZE - 1)).float() / INTER_TAB_SIZE)[:, None]
    ty = ((fy & (INTER_TAB_SIZE - 1)).float() / INTER_TAB_SIZE)[:, None]
    ux, uy = 1 - tx, 1 - ty
    top, bottom = _reflect101(row, h) * w, _reflect101(row + 1, h) * w
    left, right = _reflect101(col, w), _reflect101(col + 1, w)
    index = torch.stack([top + left, top + right, bottom + left, bottom + right], 1).long()
    values = image.reshape(n, c, h * w).gather(2, index.view(n, 1, 4 * h * w).expand(n, c, 4 * h * w))
    values = values.view(n, c, 4, h, w)
    # OpenCV's float sum, in its order: v00 w00 + v01 w01 + v10 w10 + v11 w11.
    out = values[:, :, 0] * (uy * ux)
    out += values[:, :, 1] * (uy * tx)
    out += values[:, :, 2] * (ty * ux)
    out += values[:, :, 3] * (ty * tx)
    return out


def smooth_field(noise: torch.Tensor, sigma: float, alpha: float) -> torch.Tensor:
    """float32(gaussian(noise, sigma, mode='reflect', truncate=3) * alpha) for noise (n, H, W) float64."""
    return (gaussian_filter_2d(noise, sigma, "reflect", truncate=3.0) * alpha).to(torch.float32)


def map_coordinates_reflect(image: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """scipy map_coordinates(image, (y + dy, x + dx, c), order=1, mode='reflect') for float32
    (n, C, H, W) and float32 displacements (n, H, W), in double, cast to float32.

    Bilinear interpolation of the half-sample symmetric extension is the same function as bilinear
    interpolation at the coordinate reflected about -0.5 and size - 0.5 and clamped, which is what
    grid_sample's 'reflection' padding does with align_corners=False; in float64 it agrees with scipy
    to the last bit or so (no float32 result differed in the development checks)."""
    n, c, h, w = image.shape
    # Pixel coordinates -> grid_sample's [-1, 1] (align_corners=False: -1 is the left pixel edge):
    # g = (2 * (x + dx) + 1) / w - 1, written as dx * (2 / w) + base (fewer passes over the batch).
    grid = torch.empty((n, h, w, 2), dtype=torch.float64, device=image.device)
    xs = torch.arange(w, dtype=torch.float64, device=image.device)
    ys = torch.arange(h, dtype=torch.float64, device=image.device)
    torch.add(dx.to(torch.float64) * (2 / w), (exact_div(2 * xs + 1, w) - 1).view(1, 1, w), out=grid[..., 0])
    torch.add(dy.to(torch.float64) * (2 / h), (exact_div(2 * ys + 1, h) - 1).view(1, h, 1), out=grid[..., 1])
    out = F.grid_sample(image.to(torch.float64), grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return out.to(torch.float32)


def parameters(severity: int, h: int, w: int, protocol: str = "cifar10-c") -> tuple[float, float, float]:
    """(alpha, sigma, affine jitter) for an h x w image: base * factor, base = the protocol's
    IMSIZE (min(h, w) for "scaled")."""
    base = min(h, w) if protocol == "scaled" else BASE_SIZE[protocol]
    return tuple(base * f for f in pick(FACTORS_TABLE, protocol, severity))


def apply(images: torch.Tensor, severity: int, offsets: torch.Tensor, noise_x, noise_y,
          protocol: str = "cifar10-c") -> torch.Tensor:
    """The deterministic part, given the draws: offsets (n, 3, 2) float32, the affine points' moves
    (U(-a, a) cast to float32); noise_x / noise_y (n, H, W) float64 in U(-1, 1) (unused when alpha is 0)."""
    n, _, h, w = images.shape
    alpha, sigma, _ = parameters(severity, h, w, protocol)
    image = exact_div(images.to(torch.float32), 255)
    src = torch.tensor(affine_points(h, w), dtype=torch.float32, device=images.device)
    image = warp_affine(image, get_affine_transform(src + offsets, h, w))
    if alpha != 0:
        dx = smooth_field(noise_x, sigma, alpha)
        dy = smooth_field(noise_y, sigma, alpha)
        image = map_coordinates_reflect(image, dy, dx)
    return (image.clamp_(0, 1) * 255).floor_().to(torch.uint8)


@FUNCTIONS.register("elastic_transform", "digital: affine jitter plus a smoothed random displacement field")
def elastic_transform(images: torch.Tensor, severity: int, generator: draws.Source, protocol: str = "cifar10-c") -> torch.Tensor:
    n, _, h, w = images.shape
    alpha, _, affine = parameters(severity, h, w, protocol)

    def uniform(low: float, high: float, *shape):  # NumPy's uniform: low + (high - low) * U[0, 1)
        u = draws.rand(generator, shape, device=images.device, dtype=torch.float64)
        return low + (high - low) * u

    offsets = uniform(-affine, affine, n, 3, 2).to(torch.float32)
    noise_x, noise_y = (uniform(-1, 1, n, h, w), uniform(-1, 1, n, h, w)) if alpha != 0 else (None, None)
    return apply(images, severity, offsets, noise_x, noise_y, protocol)
