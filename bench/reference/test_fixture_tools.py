"""Unit tests of the numpy pieces of the fixture scripts (no torch needed):
    python3 bench/reference/test_fixture_tools.py
"""
import os
import sys
import tempfile
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e4m3  # noqa: E402
import fixture_io as fio  # noqa: E402


def brute_force_e4m3(x):
    """Nearest finite e4m3 value by search over the table, ties to the even code, after clamping to +-448."""
    finite = np.array([v for v in e4m3.DECODE[:127] if not np.isnan(v)])  # codes 0..126: 0 .. 448
    out = []
    for v in np.clip(np.asarray(x, dtype=np.float64), -448, 448):
        d = np.abs(finite - abs(v))
        best = np.flatnonzero(d == d.min())
        code = best[0] if len(best) == 1 else [c for c in best if c % 2 == 0][0]
        out.append(np.copysign(finite[code], v))
    return np.array(out)


class E4m3Tests(unittest.TestCase):
    def test_table_has_the_e4m3fn_landmarks(self):
        self.assertEqual(e4m3.DECODE[0x7E], 448.0)
        self.assertEqual(e4m3.DECODE[0x01], 2.0 ** -9)
        self.assertEqual(e4m3.DECODE[0x08], 2.0 ** -6)
        self.assertEqual(e4m3.DECODE[0x38], 1.0)
        self.assertEqual(e4m3.DECODE[0xB8], -1.0)
        self.assertTrue(np.isnan(e4m3.DECODE[0x7F]) and np.isnan(e4m3.DECODE[0xFF]))

    def test_every_code_round_trips(self):
        codes = np.array([c for c in range(256) if c not in (0x7F, 0xFF)], dtype=np.uint8)
        self.assertTrue(np.array_equal(e4m3.encode(e4m3.decode(codes)), codes))

    def test_midpoints_round_to_even_and_match_brute_force(self):
        finite = e4m3.DECODE[:127]
        mids = (finite[:-1] + finite[1:]) / 2
        rng = np.random.default_rng(1)
        samples = np.concatenate([mids, -mids, np.nextafter(mids, 0), np.nextafter(mids, 1000),
                                  rng.normal(0, 30, 4000), rng.normal(0, 0.01, 2000), [500.0, -1e6, 0.0, 464.0]])
        np.testing.assert_array_equal(e4m3.round_to_e4m3(samples), brute_force_e4m3(samples))
        # a tie goes to the even code: 1.0625 lies between 1.0 (0x38) and 1.125 (0x39)
        self.assertEqual(e4m3.encode(1.0625), 0x38)
        self.assertEqual(e4m3.encode(1.1875), 0x3A)

    def test_per_token_scale_is_amax_over_448_in_float32(self):
        x = np.array([[1.0, -3.5, 2.0], [0.0, 0.0, 0.0]], dtype=np.float32)
        codes, scale = e4m3.quantize_per_token(x)
        self.assertEqual(scale[0], np.float32(3.5) / np.float32(448))
        self.assertEqual(scale[1], e4m3.PER_TOKEN_MIN_SCALE)
        self.assertEqual(e4m3.decode(codes[0, 1]), -448.0)
        self.assertTrue(np.all(codes[1] == 0))

    def test_fbgemm_clamps_the_row_maximum_to_the_upper_bound(self):
        x = np.array([[10.0, 1.0], [0.5, -0.25]], dtype=np.float32)
        codes, scale = e4m3.quantize_per_token_fbgemm(x, ub=4.0)
        inv = np.float32(448) / np.float32(4)
        self.assertEqual(scale[0], np.float32(1) / inv)
        self.assertEqual(e4m3.decode(codes[0, 0]), 448.0)  # 10 * 112 saturates
        self.assertEqual(e4m3.decode(codes[1, 0]), 448.0)

    def test_group_and_block_scales(self):
        rng = np.random.default_rng(2)
        x = rng.normal(size=(3, 256)).astype(np.float32)
        codes, scale = e4m3.quantize_per_token_group(x)
        self.assertEqual(scale.shape, (3, 2))
        self.assertEqual(scale[2, 1], np.float32(np.max(np.abs(x[2, 128:]))) / np.float32(448))
        back = e4m3.decode(codes).reshape(3, 2, 128) * scale[..., None]
        self.assertLess(np.max(np.abs(back.reshape(3, 256) - x)), 0.07 * np.max(np.abs(x)))
        w = rng.normal(size=(256, 384)).astype(np.float32)
        wc, ws = e4m3.quantize_weight_blocks(w)
        self.assertEqual(ws.shape, (2, 3))
        self.assertEqual(ws[1, 2], np.float32(np.max(np.abs(w[128:, 256:]))) / np.float32(448))
        with self.assertRaises(ValueError):
            e4m3.quantize_weight_blocks(w[:200])


class SafetensorsTests(unittest.TestCase):
    def test_round_trip_with_bf16_and_f8(self):
        rng = np.random.default_rng(3)
        w = rng.normal(size=(4, 8))
        tensors = {"b.weight": fio.bf16(w), "a.codes": fio.Tensor("F8_E4M3", e4m3.encode(w)),
                   "ids": fio.i64([1, 2, 3]), "s": fio.f32(np.float32(0.5).reshape(1))}
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "x.safetensors")
            fio.save_safetensors(path, tensors)
            with open(path, "rb") as f:
                n = int.from_bytes(f.read(8), "little")
            self.assertEqual(n % 8, 0)
            back = fio.load_safetensors(path)
        self.assertEqual(back["b.weight"].dtype, "BF16")
        np.testing.assert_array_equal(fio.to_float(back["b.weight"]), fio.bf16_round(w))
        np.testing.assert_array_equal(fio.to_float(back["a.codes"]), e4m3.round_to_e4m3(w))
        self.assertEqual(back["ids"].array.tolist(), [1, 2, 3])

    def test_bf16_rounds_to_nearest_even(self):
        self.assertEqual(fio.bf16_round(1.0 + 2.0 ** -8), 1.0)  # tie, even mantissa stays
        self.assertEqual(fio.bf16_round(1.0 + 3 * 2.0 ** -8), 1.0 + 2.0 ** -6)  # tie, odd rounds up
        self.assertEqual(fio.bf16_round(1.0 + 2.0 ** -8 + 2.0 ** -20), 1.0 + 2.0 ** -7)


if __name__ == "__main__":
    unittest.main()
