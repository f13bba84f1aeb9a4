"""A batched JPEG encode/decode round trip that reproduces libjpeg-turbo: jpeg_compression
(robench.corruptions.digital) and the protocols' quality-85 storage step (registry.store).

The generator saves each image with Pillow and decodes it again.
Pillow hands the work to libjpeg-turbo with its defaults, restated here step by step:

encode  RGB -> YCbCr in 16-bit fixed point (jccolor.c); luma padded to whole 8x8 blocks by
        repeating the last row/column; chroma padded to an even height and a multiple of 16
        wide, box-averaged 2x2 with the alternating 1, 2 rounding bias (jcsample.c, 4:2:0),
        then padded to whole blocks; level shift by 128; the "islow" integer forward DCT
        (jfdctint.c); quantisation by the IJG standard tables scaled by jpeg_quality_scaling
        (force_baseline), with libjpeg-turbo's reciprocal rounding (jcdctmgr.c).
decode  dequantisation; the islow integer inverse DCT with its masked range limit
        (jidctint.c, jdmaster.c); "fancy" triangular 2x upsampling of chroma, 9/3/3/1 weights
        with the 8/7 rounding biases and edge replication (jdsample.c); YCbCr -> RGB by the
        fixed-point tables of jdcolor.c.
Entropy coding is lossless and skipped. Each DCT pass (a butterfly of integer multiplies and
adds, then one rounding shift) is an exact linear map followed by a floor, so it runs as one
float64 matrix product per pass over all blocks of the batch (integers stay far below 2^53,
so every product and sum is exact) and reproduces the integer code bit for bit.

Other image sizes: nothing here is size-bound (JPEG works on 8x8 blocks at any size); partial
blocks and MCUs are padded exactly as libjpeg pads them.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch



# JPEG standard (Annex K) quantisation tables, natural (row-major) order, as libjpeg ships them.
STD_LUMINANCE = (
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
)
STD_CHROMINANCE = (
    17, 18, 24, 47, 99, 99, 99, 99,
    18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99,
) + (99,) * 32


def quant_table(base: tuple[int, ...], quality: int) -> list[int]:
    """jpeg_set_quality(quality, force_baseline=TRUE): scale the base table, clamp to 1..255."""
    scale = 5000 // quality if quality < 50 else 200 - quality * 2
    return [min(max((v * scale + 50) // 100, 1), 255) for v in base]


# ---------------------------------------------------------------- islow DCT as exact matrices

CONST_BITS, PASS1_BITS = 13, 2


def _fix(x: float) -> int:
    return int(x * (1 << CONST_BITS) + 0.5)


def _islow_odd(t0, t1, t2, t3):
    """The shared odd-part rotation of jfdctint.c / jidctint.c (Loeffler, Ligtenberg, Moschytz)."""
    z1, z2, z3, z4 = t0 + t3, t1 + t2, t0 + t2, t1 + t3
    z5 = (z3 + z4) * _fix(1.175875602)
    t0, t1, t2, t3 = t0 * _fix(0.298631336), t1 * _fix(2.053119869), t2 * _fix(3.072711026), t3 * _fix(1.501321110)
    z1, z2 = z1 * -_fix(0.899976223), z2 * -_fix(2.562915447)
    z3, z4 = z3 * -_fix(1.961570560) + z5, z4 * -_fix(0.390180644) + z5
    return t0 + z1 + z3, t1 + z2 + z4, t2 + z2 + z3, t3 + z1 + z4


def _fdct_1d(d):
    """One jfdctint.c pass on 8 inputs; returns the 8 outputs before rounding, all scaled by 2^13.

    The DC and the middle coefficient are shifted without rounding in the source; scaling
    every output to the same 2^13 lets one rounding shift serve all eight.
    """
    tmp0, tmp7 = d[0] + d[7], d[0] - d[7]
    tmp1, tmp6 = d[1] + d[6], d[1] - d[6]
    tmp2, tmp5 = d[2] + d[5], d[2] - d[5]
    tmp3, tmp4 = d[3] + d[4], d[3] - d[4]
    tmp10, tmp13, tmp11, tmp12 = tmp0 + tmp3, tmp0 - tmp3, tmp1 + tmp2, tmp1 - tmp2
    out = [None] * 8
    out[0] = (tmp10 + tmp11) * (1 << CONST_BITS)
    out[4] = (tmp10 - tmp11) * (1 << CONST_BITS)
    z1 = (tmp12 + tmp13) * _fix(0.541196100)
    out[2] = z1 + tmp13 * _fix(0.765366865)
    out[6] = z1 + tmp12 * -_fix(1.847759065)
    out[7], out[5], out[3], out[1] = _islow_odd(tmp4, tmp5, tmp6, tmp7)
    return out


def _idct_1d(c):
    """One jidctint.c pass on 8 dequantised inputs; returns the 8 outputs before rounding."""
    z1 = (c[2] + c[6]) * _fix(0.541196100)
    tmp2 = z1 + c[6] * -_fix(1.847759065)
    tmp3 = z1 + c[2] * _fix(0.765366865)
    tmp0 = (c[0] + c[4]) * (1 << CONST_BITS)
    tmp1 = (c[0] - c[4]) * (1 << CONST_BITS)
    tmp10, tmp13, tmp11, tmp12 = tmp0 + tmp3, tmp0 - tmp3, tmp1 + tmp2, tmp1 - tmp2
    o0, o1, o2, o3 = _islow_odd(c[7], c[5], c[3], c[1])
    return [tmp10 + o3, tmp11 + o2, tmp12 + o1, tmp13 + o0, tmp13 - o0, tmp12 - o1, tmp11 - o2, tmp10 - o3]


def _matrix_1d(transform) -> np.ndarray:
    """The integer 8x8 matrix of a linear 1-D pass, found by running it on the unit vectors."""
    return np.stack(transform(list(np.eye(8, dtype=np.int64))), 0)


def _pass(matrix: np.ndarray, shift: int, offset: np.ndarray | float = 0.0):
    """(M, b) for x.view(-1, 8) @ M + b = (matrix @ x + offset + 2^(shift-1)) / 2^shift per run of 8.

    Dividing by the power of two is exact in float64, so floor() of the result is the C code's
    arithmetic right shift (DESCALE).
    """
    scale = 2.0**-shift
    return matrix.T.astype(np.float64) * scale, (np.asarray(offset, np.float64) + 2.0 ** (shift - 1)) * scale * np.ones(8)


def _device(device_type: str, device_index) -> torch.device:
    return torch.device(device_type, device_index) if device_index is not None else torch.device(device_type)


@lru_cache(maxsize=None)
def _plan(quality: int, device_type: str, device_index):
    """Per quality: the four DCT passes and the two quantisers, as float64 tensors on device."""
    device = _device(device_type, device_index)
    fdct, idct = _matrix_1d(_fdct_1d), _matrix_1d(_idct_1d)
    passes = (
        # forward rows: samples - 128 (folded into the offset), DESCALE by CONST_BITS - PASS1_BITS
        _pass(fdct, CONST_BITS - PASS1_BITS, -128.0 * fdct.sum(1)),
        _pass(fdct, CONST_BITS + PASS1_BITS),  # forward columns
        _pass(idct, CONST_BITS - PASS1_BITS),  # inverse columns (of dequantised coefficients)
        # inverse rows, then + 128 back to samples (the range limit's offset), folded in
        _pass(idct, CONST_BITS + PASS1_BITS + 3, 128.0 * 2 ** (CONST_BITS + PASS1_BITS + 3)),
    )
    passes = [tuple(torch.tensor(a, dtype=torch.float64, device=device) for a in p) for p in passes]
    quantisers = {}
    for name, base in (("luma", STD_LUMINANCE), ("chroma", STD_CHROMINANCE)):
        qv = quant_table(base, quality)
        corr, recip = zip(*(_reciprocal(8 * v) for v in qv))
        # Tables indexed [u, v] (horizontal, vertical frequency): the column passes run on a
        # transposed plane, where a block's coefficients lie at (column u, row v).
        quantisers[name] = tuple(
            torch.tensor(t, dtype=torch.float64, device=device).view(8, 8).T.contiguous() for t in (corr, recip, qv)
        )
    return passes, quantisers


def _reciprocal(divisor: int) -> tuple[int, float]:
    """libjpeg-turbo's compute_reciprocal: quantised = ((|t| + corr) * recip) >> shift.

    Returns corr and recip / 2^shift (an exact float). The divisor is quantval * 8 because the
    forward DCT leaves its output scaled up by 8.
    """
    b = divisor.bit_length() - 1
    r = 16 + b
    fq, fr = divmod(1 << r, divisor)
    c = divisor // 2
    if fr == 0:  # power of two
        fq >>= 1
        r -= 1
    elif fr <= divisor // 2:
        c += 1
    else:
        fq += 1
    return c, fq / 2.0**r


def _run(x: torch.Tensor, p) -> torch.Tensor:
    """One DCT pass on every aligned run of 8 along the last axis, with its rounding shift."""
    m, b = p
    return torch.addmm(b, x.reshape(-1, 8), m).floor_().view(x.shape)


def _tile(table: torch.Tensor, shape) -> torch.Tensor:
    """An 8x8 table repeated over a (W, H) plane laid out as (block col, u, block row, v)."""
    w, h = shape
    return table.view(1, 8, 1, 8).expand(w // 8, 8, h // 8, 8).reshape(w, h)


def _transpose(x: torch.Tensor) -> torch.Tensor:
    return x.transpose(-1, -2).contiguous()


def codec_plane(plane: torch.Tensor, passes, quantiser) -> torch.Tensor:
    """Encode and decode (..., H, W) samples 0..255 (float64, H and W multiples of 8).

    An 8x8 block's row pass is a pass over aligned runs of 8 along a plane's rows, so no
    blocking copies are needed: rows pass, transpose, columns pass, quantise and dequantise,
    inverse columns pass, transpose back, inverse rows pass.
    """
    x = _transpose(_run(plane, passes[0]))
    x = _run(x, passes[1])
    # Quantise, sign(t) * (((|t| + corr) * recip) >> shift), then dequantise (* quantval). The
    # 8x8 tables are tiled over one whole plane first: broadcasting a contiguous plane over the
    # batch is much faster than broadcasting an 8x8 tile.
    corr, recip, qv = (_tile(t, x.shape[-2:]) for t in quantiser)
    x.add_(torch.copysign(corr, x)).mul_(recip).trunc_().mul_(qv)
    x = _run(_transpose(_run(x, passes[2])), passes[3])
    # jidctint's range_limit[x & 1023] wraps outside [-384, 640); the wrap leaves values inside
    # unchanged, so off the CPU it is applied everywhere rather than read back whether it is needed.
    if not _host(x):
        x = torch.remainder(x + 384, 1024).sub_(384)
    else:
        lo, hi = torch.aminmax(x)
        if lo < -384 or hi >= 640:
            x = torch.remainder(x + 384, 1024).sub_(384)
    return x.clamp_(0, 255)


def _host(t: torch.Tensor) -> bool:
    return t.device.type == "cpu"  # (tests patch this to take the other devices' path on the CPU)


def _pad_edge(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Repeat the last row/column of (N, C, H, W) up to (h, w), as libjpeg's expand_*_edge."""
    if x.shape[2] < h:
        x = torch.cat((x, x[:, :, -1:].expand(-1, -1, h - x.shape[2], -1)), 2)
    if x.shape[3] < w:
        x = torch.cat((x, x[:, :, :, -1:].expand(-1, -1, -1, w - x.shape[3])), 3)
    return x


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


# jccolor.c / jdcolor.c constants: 16-bit fixed point.
def _fix16(x: float) -> int:
    return int(x * 65536 + 0.5)


_RGB_TO_YCC = (
    (_fix16(0.29900), _fix16(0.58700), _fix16(0.11400), 32768),
    (-_fix16(0.16874), -_fix16(0.33126), _fix16(0.5), (128 << 16) + 32767),
    (_fix16(0.5), -_fix16(0.41869), -_fix16(0.08131), (128 << 16) + 32767),
)


def rgb_to_ycc(rgb: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) float64 holding 0..255 -> Y, Cb, Cr (N, 3, H, W) exactly as jccolor.c rounds."""
    r, g, b = rgb.unbind(1)
    out = torch.empty_like(rgb)
    s = 2.0**-16
    for k, (kr, kg, kb, offset) in enumerate(_RGB_TO_YCC):
        torch.mul(r, kr * s, out=out[:, k])
        out[:, k].add_(g, alpha=kg * s).add_(b, alpha=kb * s).add_(offset * s)
    return out.floor_()


def ycc_to_rgb(y: torch.Tensor, cb: torch.Tensor, cr: torch.Tensor) -> torch.Tensor:
    """jdcolor.c ycc_rgb_convert with its tables: R = y + round(1.402 Cr), etc.; uint8 out."""
    s = 2.0**-16
    cb, cr = cb - 128, cr - 128  # the tables' offsets fold 128 back in exactly
    out = torch.empty((y.shape[0], 3, *y.shape[1:]), dtype=torch.uint8, device=y.device)
    out[:, 0] = (cr * (_fix16(1.40200) * s)).add_(0.5).floor_().add_(y).clamp_(0, 255)
    g = (cb * (-_fix16(0.34414) * s)).add_(cr, alpha=-_fix16(0.71414) * s)
    out[:, 1] = g.add_(0.5).floor_().add_(y).clamp_(0, 255)
    out[:, 2] = (cb * (_fix16(1.77200) * s)).add_(0.5).floor_().add_(y).clamp_(0, 255)
    return out


@lru_cache(maxsize=None)
def _pair_columns(w: int, device_type: str, device_index):
    """(w, w/2) matrix and bias adding column pairs, + 1, 2, 1, 2, ..., scaled by 1/4."""
    m = np.zeros((w, w // 2))
    m[np.arange(w), np.arange(w) // 2] = 0.25
    bias = np.tile([0.25, 0.5], w // 2)[: w // 2]
    return torch.tensor(m, device=_device(device_type, device_index)), torch.tensor(bias, device=_device(device_type, device_index))


def downsample_h2v2(c: torch.Tensor) -> torch.Tensor:
    """jcsample.c h2v2_downsample of (N, C, H, W): 2x2 sums + bias 1, 2, 1, 2, ... along a row, >> 2."""
    n, ch, h, w = c.shape
    rows = c[:, :, 0::2] + c[:, :, 1::2]
    m, b = _pair_columns(w, c.device.type, c.device.index)
    return torch.addmm(b, rows.view(-1, w), m).floor_().view(n, ch, h // 2, w // 2)


@lru_cache(maxsize=None)
def _fancy_columns(w: int, device_type: str, device_index):
    """(w, 2w) matrix and bias of the horizontal half of h2v2_fancy_upsample, scaled by 1/16."""
    m = np.zeros((w, 2 * w))
    for j in range(w):
        m[j, 2 * j] += 3
        m[max(j - 1, 0), 2 * j] += 1
        m[j, 2 * j + 1] += 3
        m[min(j + 1, w - 1), 2 * j + 1] += 1
    bias = np.tile([8.0, 7.0], w)
    device = _device(device_type, device_index)
    return torch.tensor(m / 16, device=device), torch.tensor(bias / 16, device=device)


def upsample_h2v2_fancy(c: torch.Tensor) -> torch.Tensor:
    """jdsample.c h2v2_fancy_upsample of (N, C, h, w): triangular 3/4-1/4 filter in each axis.

    Each output row sums 3 x the nearest input row and the next nearest (the row above for
    even output rows, below for odd; edges repeated). Each output column then takes 3 x the
    nearest column sum + the next nearest + 8 (even columns) or 7 (odd), >> 4.
    """
    n, ch, h, w = c.shape
    rows = (c * 3).unsqueeze(3).repeat(1, 1, 1, 2, 1)  # (N, C, h, 2, w)
    rows[:, :, 1:, 0] += c[:, :, :-1]
    rows[:, :, :1, 0] += c[:, :, :1]
    rows[:, :, :-1, 1] += c[:, :, 1:]
    rows[:, :, -1:, 1] += c[:, :, -1:]
    m, b = _fancy_columns(w, c.device.type, c.device.index)
    return torch.addmm(b, rows.view(-1, w), m).floor_().view(n, ch, 2 * h, 2 * w)


# On the CPU the round trip runs on pieces of about this many pixels per channel (16 images of
# 64x64, one of 224x224): its float64 intermediates then stay in cache. Measured on one core:
# 1.9x faster per image than whole batches at 224 px, 2.3x at 64 px (the engine's pieces are 4x
# larger, sized for the other corruptions).
CPU_PIECE_PIXELS = 1 << 16


def jpeg_round_trip(images: torch.Tensor, quality: int) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> uint8: Pillow's save(quality=q) then decode, via libjpeg-turbo."""
    piece = max(1, CPU_PIECE_PIXELS // (images.shape[2] * images.shape[3]))
    if images.device.type == "cpu" and images.shape[0] > piece:
        return torch.cat([_round_trip(part, quality) for part in images.split(piece)])
    return _round_trip(images, quality)


def _round_trip(images: torch.Tensor, quality: int) -> torch.Tensor:
    n, _, h, w = images.shape
    passes, quantisers = _plan(quality, images.device.type, images.device.index)
    # Chroma needs the image padded to an even height and a whole number of 16-px MCUs wide
    # (edges repeated); repeating edges commutes with the per-pixel colour conversion.
    hp, wp = 2 * _ceil(h, 2), 16 * _ceil(w, 16)
    ycc = rgb_to_ycc(_pad_edge(images.to(torch.float64), hp, wp))

    # Luma: whole 8x8 blocks (blocks past the image edge are cropped away).
    luma = codec_plane(_pad_edge(ycc[:, :1], 8 * _ceil(h, 8), wp), passes, quantisers["luma"])
    luma = luma[:, 0, :h, :w]

    # Chroma: 2x2 averages, then the last row repeated down to whole blocks.
    chroma = downsample_h2v2(ycc[:, 1:])
    chroma = codec_plane(_pad_edge(chroma, 8 * _ceil(h, 16), wp // 2), passes, quantisers["chroma"])
    chroma = upsample_h2v2_fancy(chroma[:, :, : _ceil(h, 2), : _ceil(w, 2)])[:, :, :h, :w]

    return ycc_to_rgb(luma, chroma[:, 0], chroma[:, 1])
