"""float8 e4m3fn (OCP FP8 E4M3, no infinities, NaN = S.1111.111) and the activation/weight quantisers of the
FP8 checkpoint formats, in numpy. bench/reference/FP8.md states the same arithmetic in words.

Every quantiser works in float32 arithmetic, as the engine does: the input is rounded to float32 first, a
scale is one float32 operation from float32 operands, x/scale (or x*inverse) is one float32 operation, and
the result is clamped to +-448 and rounded to the nearest e4m3 value, ties to even. numpy float32 scalar and
array arithmetic is IEEE round-to-nearest-even, so these are the exact values.
"""
import numpy as np

E4M3_MAX = 448.0
_MIN_NORMAL_EXP = -6  # smallest normal is 2^-6; subnormals are multiples of 2^-9


def round_to_e4m3(x):
    """x (any float array) clamped to [-448, 448] and rounded to the nearest e4m3fn value, ties to even; float64."""
    x = np.clip(np.asarray(x, dtype=np.float64), -E4M3_MAX, E4M3_MAX)
    a = np.abs(x)
    _, e = np.frexp(a)  # a = m * 2^e with m in [0.5, 1), so floor(log2 a) = e - 1
    quantum = np.ldexp(1.0, np.maximum(e - 1, _MIN_NORMAL_EXP) - 3)
    return np.copysign(np.rint(a / quantum) * quantum, x)


def encode(x):
    """uint8 e4m3fn codes of round_to_e4m3(x); the sign bit follows x, so -0.0001 gives 0x80 (negative zero)."""
    x = np.asarray(x, dtype=np.float64)
    r = np.abs(round_to_e4m3(x))
    _, e = np.frexp(np.where(r > 0, r, 1.0))
    normal = r >= 2.0 ** _MIN_NORMAL_EXP
    exp_field = np.where(normal, e - 1 + 7, 0)
    mant = np.where(normal, (r / np.ldexp(1.0, e - 1) - 1.0) * 8.0, r / 2.0 ** -9)
    code = (exp_field.astype(np.int64) << 3) | np.rint(mant).astype(np.int64)
    return (code | (np.signbit(x).astype(np.int64) << 7)).astype(np.uint8)


def _decode_table():
    t = np.zeros(256, dtype=np.float64)
    for c in range(256):
        s, e, m = c >> 7, (c >> 3) & 15, c & 7
        v = np.nan if (e == 15 and m == 7) else (m * 2.0 ** -9 if e == 0 else (1 + m / 8) * 2.0 ** (e - 7))
        t[c] = -v if s else v
    return t


DECODE = _decode_table()
_MIDPOINTS = (DECODE[:126] + DECODE[1:127]) / 2  # between consecutive non-negative finite values, 0 .. 432


def decode(codes):
    return DECODE[np.asarray(codes, dtype=np.uint8)]


# ---- scale computations (float32) --------------------------------------------------------------------

_F448 = np.float32(E4M3_MAX)
PER_TOKEN_MIN_SCALE = np.float32(1.0) / np.float32(E4M3_MAX * 512.0)  # vLLM's floor for dynamic per-token scales
GROUP_AMAX_EPS = np.float32(1e-10)   # per-token-group (block format) floor on the group's amax
FBGEMM_AMAX_EPS = np.float32(1e-12)  # fbgemm quantize_fp8_per_row's floor on the row's amax


def _f32(x):
    return np.asarray(x, dtype=np.float32)


def boundary_distance(v):
    """|v - the nearest rounding boundary of e4m3| for scaled values v (a boundary is a midpoint between
    neighbouring e4m3 values; above 448 there is none, everything saturates to 448). A quantised value whose
    input moves by less than this keeps its code."""
    a = np.abs(np.asarray(v, dtype=np.float64))
    i = np.clip(np.searchsorted(_MIDPOINTS, a), 1, len(_MIDPOINTS) - 1)
    return np.minimum(np.abs(a - _MIDPOINTS[i - 1]), np.abs(a - _MIDPOINTS[i]))


def _scaled_div(x32, scale32):
    return np.divide(x32, scale32, dtype=np.float32)


def scaled_with_scale(x, scale):
    """f32(x / scale): the value that is clamped and rounded to e4m3."""
    return _scaled_div(_f32(x), _f32(scale))


def quantize_with_scale(x, scale):
    """codes of e4m3(clamp(f32(x / scale))) for a given scale (array broadcast against x, or scalar)."""
    return encode(scaled_with_scale(x, scale))


def scaled_per_token(x):
    """Dynamic per-token (per-row) activations: compressed-tensors 'token' strategy and --quantization fp8.
    scale = max(f32(amax / 448), 1 / (448 * 512)); returns (f32(x / scale), scale [rows] float32)."""
    x32 = _f32(x)
    amax = np.max(np.abs(x32), axis=-1)
    scale = np.maximum(np.divide(amax, _F448, dtype=np.float32), PER_TOKEN_MIN_SCALE).astype(np.float32)
    return _scaled_div(x32, scale[..., None]), scale


def scaled_per_token_fbgemm(x, ub):
    """fbgemm_fp8 activations: m = clamp(amax, 1e-12, ub); inv = f32(448 / m); the rounded value is f32(x * inv)
    and the dequantisation scale f32(1 / inv). Returns (f32(x * inv), scale [rows] float32)."""
    x32 = _f32(x)
    m = np.clip(np.max(np.abs(x32), axis=-1), FBGEMM_AMAX_EPS, np.float32(ub)).astype(np.float32)
    inv = np.divide(_F448, m, dtype=np.float32)
    return np.multiply(x32, inv[..., None], dtype=np.float32), np.divide(np.float32(1.0), inv, dtype=np.float32)


def scaled_per_token_group(x, group=128):
    """Block format ('fp8' with weight_block_size) activations: per row, per group of `group` columns,
    scale = f32(max(amax, 1e-10) / 448). Returns (f32(x / scale), scale [rows, k/group] float32)."""
    x32 = _f32(x)
    rows, k = x32.shape
    if k % group:
        raise ValueError(f"row length {k} is not a multiple of the group size {group}")
    g = x32.reshape(rows, k // group, group)
    amax = np.maximum(np.max(np.abs(g), axis=-1), GROUP_AMAX_EPS)
    scale = np.divide(amax, _F448, dtype=np.float32)
    return _scaled_div(g, scale[..., None]).reshape(rows, k), scale


def quantize_per_token(x):
    v, scale = scaled_per_token(x)
    return encode(v), scale


def quantize_per_token_fbgemm(x, ub):
    v, scale = scaled_per_token_fbgemm(x, ub)
    return encode(v), scale


def quantize_per_token_group(x, group=128):
    v, scale = scaled_per_token_group(x, group)
    return encode(v), scale


def quantize_static(x, scale):
    """Static per-tensor activations (compressed-tensors input_scale) and the FP8 KV cache (k_scale, v_scale):
    codes = e4m3(clamp(f32(x / scale)))."""
    return quantize_with_scale(x, np.float32(scale))


def quantize_weight_per_row(w):
    """--quantization fp8 weights: per output row, scale = f32(amax / 448) (floored like per-token scales);
    returns (codes [out, in], scale [out] float32)."""
    return quantize_per_token(w)


def quantize_weight_per_tensor(w, scale_round=None):
    """One scale for the whole weight: f32(amax / 448), optionally rounded (e.g. to bf16) before use."""
    w32 = _f32(w)
    scale = np.divide(np.max(np.abs(w32)), _F448, dtype=np.float32)
    if scale_round is not None:
        scale = np.float32(scale_round(scale))
    return quantize_with_scale(w32, scale), np.float32(scale)


def quantize_weight_blocks(w, block=(128, 128), scale_round=None):
    """Block weights: one scale per [block[0] x block[1]] tile, f32(amax / 448) optionally rounded (to bf16 for
    Qwen3-FP8 style); returns (codes [out, in], scale [out/b0, in/b1] float32)."""
    w32 = _f32(w)
    n, k = w32.shape
    b0, b1 = block
    if n % b0 or k % b1:
        raise ValueError(f"weight {n}x{k} is not a whole number of {b0}x{b1} blocks")
    tiles = w32.reshape(n // b0, b0, k // b1, b1)
    scale = np.divide(np.max(np.abs(tiles), axis=(1, 3)), _F448, dtype=np.float32)
    if scale_round is not None:
        scale = np.asarray(scale_round(scale), dtype=np.float32)
    codes = quantize_with_scale(tiles, scale[:, None, :, None]).reshape(n, k)
    return codes, scale
