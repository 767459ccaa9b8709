"""The FP8 checkpoint formats of issue #30 as this project's fixtures write them, and the arithmetic each one
means at inference (bench/reference/FP8.md says it in words). A Format holds the quantised weights of one
model; `tensors()` is what its model.safetensors stores, `quantization_config()` its config.json entry, and
calling it as Model's qlinear hook computes a quantised linear layer."""
import re

import numpy as np

import e4m3
import fixture_io as fio

LINEAR = re.compile(r"^model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)\.weight$")


def _module(name):
    return name[: -len(".weight")]


def _ct_args(strategy, dynamic, observer):
    return {"actorder": None, "block_structure": None, "dynamic": dynamic, "group_size": None,
            "num_bits": 8, "observer": observer, "observer_kwargs": {}, "strategy": strategy, "symmetric": True,
            "type": "float"}


def _ct_config(weights, inputs, kv=None):
    """compressed-tensors' quantization_config as llm-compressor writes it for float-quantized models."""
    return {"config_groups": {"group_0": {"format": "float-quantized", "input_activations": inputs,
                                          "output_activations": None, "targets": ["Linear"], "weights": weights}},
            "format": "float-quantized", "global_compression_ratio": None, "ignore": ["lm_head"],
            "kv_cache_scheme": kv, "quant_method": "compressed-tensors", "quantization_status": "compressed",
            "sparsity_config": {}, "transform_config": {}, "version": "0.11.0"}


class Format:
    """Base: per-weight codes and scales; subclasses define the scales and the activation quantiser."""
    scale_name = "weight_scale"

    def __init__(self, weights, calibration=None, ignore=()):
        self.base = weights  # float64 arrays of the bf16 checkpoint
        self.cal = calibration or {}
        self.ignore = set(ignore)
        self.observer = None  # observer(site, x, scaled values, dequantisation scale broadcast to x)
        self.q = {}  # weight name -> (codes, scale array as float64, dequantised weight)
        for name, w in weights.items():
            if LINEAR.match(name) and _module(name) not in self.ignore:
                codes, scale = self.quantize_weight(name, w)
                self.q[name] = (codes, scale, self.dequantize(codes, scale))

    # -- to override ---------------------------------------------------------------------------------
    def quantize_weight(self, name, w):
        raise NotImplementedError

    def scale_tensor(self, name, scale):
        raise NotImplementedError

    def dequantize(self, codes, scale):
        return e4m3.decode(codes) * scale

    def quantize_input(self, name, x):
        """(the f32 values that are rounded to e4m3 [rows, k], the dequantisation scale: per row [rows],
        per tensor (scalar) or per group [rows, k / 128])."""
        raise NotImplementedError

    @staticmethod
    def expand_scale(xs, shape):
        xs = np.asarray(xs, dtype=np.float64)
        if xs.ndim == 2:
            return np.repeat(xs, shape[1] // xs.shape[1], axis=1)
        return xs.reshape(-1, 1) if xs.ndim == 1 else xs

    def extra_tensors(self):
        return {}

    # -- shared --------------------------------------------------------------------------------------
    def tensors(self):
        out = {}
        for name, w in self.base.items():
            if name in self.q:
                codes, scale, _ = self.q[name]
                out[name] = fio.Tensor("F8_E4M3", codes)
                out[_module(name) + "." + self.scale_name] = self.scale_tensor(name, scale)
            else:
                out[name] = fio.bf16(w)
        out.update(self.extra_tensors())
        return out

    def __call__(self, name, x):
        if name not in self.q:
            return None
        codes, scale, _ = self.q[name]
        v, xs = self.quantize_input(name, x)
        if self.observer:
            self.observer(name, x, v, self.expand_scale(xs, x.shape))
        dtype = x.dtype
        return self.matmul(e4m3.decode(e4m3.encode(v)).astype(dtype), np.asarray(xs, dtype=dtype),
                           e4m3.decode(codes).astype(dtype), scale.astype(dtype))

    @staticmethod
    def matmul(a, xs, wq, ws):
        """(codes_x . codes_w^T) * x_scale[row] * w_scale[col]: every product of two e4m3 values is exact,
        and so is their float64 sum at these sizes; the scales are applied once, to the sum."""
        return (a @ wq.T) * xs.reshape(-1, 1) * ws.reshape(1, -1)

    def weights_only(self, name, x):
        """Sensitivity: dequantised weights with the activations left unquantised (W8A16)."""
        return None if name not in self.q else x @ self.q[name][2].astype(x.dtype).T


class CtChannel(Format):
    """compressed-tensors FP8_DYNAMIC: per-channel BF16 weight_scale [out, 1]; dynamic per-token activations."""

    def quantize_weight(self, name, w):
        _, s = e4m3.quantize_per_token(w)  # f32(amax / 448) per output row
        s = fio.bf16_round(s)  # stored as BF16, so the codes are made with the stored value
        return e4m3.quantize_with_scale(w, s[:, None]), s[:, None]

    def scale_tensor(self, name, scale):
        return fio.bf16(scale)

    def quantize_input(self, name, x):
        return e4m3.scaled_per_token(x)

    def quantization_config(self):
        return _ct_config(_ct_args("channel", False, "minmax"), _ct_args("token", True, None))


class CtTensor(Format):
    """compressed-tensors FP8 (static): per-tensor BF16 weight_scale [1] and input_scale [1]."""

    def quantize_weight(self, name, w):
        codes, s = e4m3.quantize_weight_per_tensor(w, scale_round=fio.bf16_round)
        return codes, np.array([float(s)])

    def scale_tensor(self, name, scale):
        return fio.bf16(scale.reshape(1))

    def input_scale(self, name):
        return float(fio.bf16_round(np.float32(self.cal[_module(name)]) / np.float32(448)))

    def quantize_input(self, name, x):
        s = self.input_scale(name)
        return e4m3.scaled_with_scale(x, s), np.float32(s)

    def extra_tensors(self):
        return {_module(n) + ".input_scale": fio.bf16(np.array([self.input_scale(n)])) for n in self.q}

    def quantization_config(self):
        return _ct_config(_ct_args("tensor", False, "minmax"), _ct_args("tensor", False, "static_minmax"))


class CtKv(CtChannel):
    """CtChannel plus compressed-tensors' kv_cache_scheme: per-layer BF16 k_scale and v_scale [1] on self_attn;
    keys (after RoPE) and values are stored as e4m3(clamp(x / scale)) and read back as code * scale."""

    def __init__(self, weights, calibration, layers):
        super().__init__(weights, calibration)
        self.kv_scales = {}
        for i in range(layers):
            for kv in ("k", "v"):
                amax = self.cal[f"model.layers.{i}.self_attn.{kv}"]
                self.kv_scales[(i, kv)] = float(fio.bf16_round(np.float32(amax) / np.float32(448)))

    def extra_tensors(self):
        return {f"model.layers.{i}.self_attn.{kv}_scale": fio.bf16(np.array([s]))
                for (i, kv), s in self.kv_scales.items()}

    def kv_hook(self, layer, k, v):
        out = []
        for x, kv in ((k, "k"), (v, "v")):
            s = self.kv_scales[(layer, kv)]
            scaled = e4m3.scaled_with_scale(x, s)
            if self.observer:
                self.observer(f"model.layers.{layer}.self_attn.{kv}_cache", x, scaled, s)
            out.append((e4m3.decode(e4m3.encode(scaled)) * s).astype(x.dtype))
        return tuple(out)

    def quantization_config(self):
        c = super().quantization_config()
        c["kv_cache_scheme"] = _ct_args("tensor", False, "minmax")
        return c


class Fbgemm(Format):
    """fbgemm_fp8 (Meta's Llama 3.1 FP8): F32 weight_scale [out, 1] from fbgemm's row quantiser; activations
    per token with the row maximum clamped to activation_scale_ub; modules_to_not_convert stay bf16."""

    def __init__(self, weights, calibration, ub, ignore):
        self.ub = ub
        super().__init__(weights, calibration, ignore)

    def quantize_weight(self, name, w):
        codes, s = e4m3.quantize_per_token_fbgemm(w, ub=np.finfo(np.float32).max)
        return codes, s.astype(np.float64)[:, None]

    def scale_tensor(self, name, scale):
        return fio.f32(scale)

    def quantize_input(self, name, x):
        return e4m3.scaled_per_token_fbgemm(x, self.ub)

    def quantization_config(self):
        return {"activation_scale_ub": self.ub, "modules_to_not_convert": sorted(self.ignore),
                "quant_method": "fbgemm_fp8"}


class Block(Format):
    """'fp8' with weight_block_size [128, 128] (DeepSeek-V3 / Qwen3-FP8): weight_scale_inv [out/128, in/128]
    (F32 as DeepSeek writes it, or BF16 as Qwen3-FP8 does); activations per token in groups of 128."""
    scale_name = "weight_scale_inv"

    def __init__(self, weights, scale_dtype):
        self.scale_dtype = scale_dtype
        super().__init__(weights)

    def quantize_weight(self, name, w):
        rnd = fio.bf16_round if self.scale_dtype == "BF16" else None
        codes, s = e4m3.quantize_weight_blocks(w, scale_round=rnd)
        return codes, s.astype(np.float64)

    def dequantize(self, codes, scale):
        return e4m3.decode(codes) * np.kron(scale, np.ones((128, 128)))

    @staticmethod
    def matmul(a, xs, wq, ws, group=128):
        """sum over k-groups g of (codes_x[g] . codes_w[g]^T) * x_scale[row, g] * w_scale[col / 128, g]."""
        y = np.zeros((a.shape[0], wq.shape[0]), dtype=a.dtype)
        for g in range(a.shape[1] // group):
            part = a[:, g * group:(g + 1) * group] @ wq[:, g * group:(g + 1) * group].T
            y += part * xs[:, g:g + 1] * np.repeat(ws[:, g], group)[None, :]
        return y

    def scale_tensor(self, name, scale):
        return fio.bf16(scale) if self.scale_dtype == "BF16" else fio.f32(scale)

    def quantize_input(self, name, x):
        return e4m3.scaled_per_token_group(x, 128)

    def quantization_config(self):
        return {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                "weight_block_size": [128, 128]}


class Online(Format):
    """--quantization fp8 on a bf16 checkpoint: weights per output row, f32(amax / 448) kept in float32;
    activations per token, dynamic. Nothing of it is stored: the checkpoint stays bf16."""

    def quantize_weight(self, name, w):
        codes, s = e4m3.quantize_weight_per_row(w)
        return codes, s.astype(np.float64)[:, None]

    def quantize_input(self, name, x):
        return e4m3.scaled_per_token(x)

    def tensors(self):
        return {name: fio.bf16(w) for name, w in self.base.items()}
