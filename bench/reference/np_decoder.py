"""An independent numpy implementation of the decoder families the fixtures cover (Llama, Mistral, Qwen2,
Qwen3, Gemma 2, Gemma 3 text), written from transformers' model code. It is the reference for the FP8
fixtures (with quantised linear layers and KV cache plugged in), the cross-check of the transformers
references of the family fixtures, the "engine in float32" estimate of how close a float32 engine gets, and
the tool for asking whether a fixture would notice a given mistake (Spec.variant).

`spec_from_config` reads config.json as transformers 5 writes it and as transformers 4 era checkpoints
publish it; bench/reference/README.md states the same rules in words.
"""
import copy
import math

import numpy as np

_ROPE_TYPES = ("default", "linear")


class Spec:
    """What the forward pass needs from config.json, normalised over transformers 4/5 spellings."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def variant(self, **changes):
        """A copy with some fields changed: a model with a deliberate mistake, for sensitivity checks."""
        s = copy.deepcopy(self)
        s.__dict__.update(changes)
        return s


def _rope_entry(p, what):
    p = dict(p or {})
    rope_type = p.get("rope_type") or p.get("type") or "default"
    if rope_type not in _ROPE_TYPES:
        raise ValueError(f"{what}: rope_type {rope_type} is not implemented here")
    if "rope_theta" not in p:
        raise ValueError(f"{what}: no rope_theta")
    return {"rope_type": rope_type, "rope_theta": float(p["rope_theta"]), "factor": float(p.get("factor", 1.0))}


def _layer_types(c, mt, n):
    if c.get("layer_types"):
        return list(c["layer_types"])
    if mt in ("qwen2", "qwen3"):
        # transformers: sliding_window only counts when use_sliding_window; layers >= max_window_layers slide.
        on = bool(c.get("use_sliding_window")) and c.get("sliding_window") is not None
        mwl = c.get("max_window_layers", 28)
        return ["sliding_attention" if on and i >= mwl else "full_attention" for i in range(n)]
    if mt == "mistral":
        return ["sliding_attention" if c.get("sliding_window") is not None else "full_attention"] * n
    if mt == "gemma2":
        return ["sliding_attention" if (i + 1) % 2 else "full_attention" for i in range(n)]
    if mt == "gemma3_text":
        pattern = c.get("sliding_window_pattern", 6)
        return ["sliding_attention" if (i + 1) % pattern else "full_attention" for i in range(n)]
    return ["full_attention"] * n


def _ropes(c, mt):
    """RoPE parameters per layer type."""
    rp = c.get("rope_parameters")
    if rp and ("full_attention" in rp or "sliding_attention" in rp):
        return {t: _rope_entry(rp[t], f"rope_parameters.{t}") for t in rp}
    if rp:
        one = _rope_entry(rp, "rope_parameters")
        return {"full_attention": one, "sliding_attention": one}
    scaling = dict(c.get("rope_scaling") or {})
    full = _rope_entry({**scaling, "rope_theta": c.get("rope_theta", 1e6 if mt == "gemma3_text" else 10000.0)},
                       "rope_theta/rope_scaling")
    if mt == "gemma3_text":
        local = _rope_entry({"rope_theta": c.get("rope_local_base_freq", 10000.0)}, "rope_local_base_freq")
        return {"full_attention": full, "sliding_attention": local}
    return {"full_attention": full, "sliding_attention": full}


def spec_from_config(c):
    mt = c["model_type"]
    if mt not in ("llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3_text"):
        raise ValueError(f"model_type {mt} is not implemented here")
    gemma = mt in ("gemma2", "gemma3_text")
    hidden, heads = c["hidden_size"], c["num_attention_heads"]
    n = c["num_hidden_layers"]
    head_dim = c.get("head_dim") or hidden // heads
    layer_types = _layer_types(c, mt, n)
    window = c.get("sliding_window") if "sliding_attention" in layer_types else None
    if "sliding_attention" in layer_types and window is None:
        raise ValueError("sliding layers without sliding_window")
    act = c.get("hidden_activation") or c.get("hidden_act") or ("gelu_pytorch_tanh" if gemma else "silu")
    bias = bool(c.get("attention_bias", False))
    return Spec(
        model_type=mt, hidden=hidden, intermediate=c["intermediate_size"], layers=n, heads=heads,
        kv_heads=c.get("num_key_value_heads") or heads, head_dim=head_dim, vocab=c["vocab_size"],
        eps=float(c.get("rms_norm_eps", 1e-6)), tie=bool(c.get("tie_word_embeddings", gemma)),
        layer_types=layer_types, window=window, ropes=_ropes(c, mt),
        qkv_bias=(mt == "qwen2") or bias, o_bias=bias and mt != "qwen2",
        qk_norm=mt in ("qwen3", "gemma3_text"), sandwich_norms=gemma, norm_offset=1.0 if gemma else 0.0,
        embed_scale=math.sqrt(hidden) if gemma else 1.0,
        attn_scale=(c.get("query_pre_attn_scalar", 256) if gemma else head_dim) ** -0.5,
        attn_softcap=c.get("attn_logit_softcapping") if gemma else None,
        final_softcap=c.get("final_logit_softcapping") if gemma else None,
        act=act, window_all_layers=False)


def _act(name, x):
    if name == "silu":
        return x / (1 + np.exp(-x))
    if name in ("gelu_pytorch_tanh", "gelu_tanh"):
        c = x.dtype.type(math.sqrt(2 / math.pi))
        return x.dtype.type(0.5) * x * (1 + np.tanh(c * (x + x.dtype.type(0.044715) * x * x * x)))
    raise ValueError(f"activation {name} is not implemented here")


class Model:
    """A decoder over float weights (HF tensor names). dtype float64 is the reference; float32 runs every
    operation in float32, as a float32 engine would. hf_quirks reproduces the places where transformers
    computes in float32 even in a float64 model (RoPE tables, RMSNorm, Gemma 2's eager softmax), to compare
    with transformers tightly.

    qlinear(name, x) -> y or None plugs in a quantised linear layer for weight `name` (None: unquantised);
    kv_hook(layer, k, v) -> (k, v) transforms keys (after RoPE) and values as a KV cache would store them.
    noise=(seed, eps) adds eps * rms(row) * N(0, 1) to every norm, linear and attention output: an engine whose
    rounding differs from this one's, for finding out which results such differences can change."""

    def __init__(self, spec, weights, dtype=np.float64, hf_quirks=False, qlinear=None, kv_hook=None, noise=None):
        self.s, self.dtype, self.hf = spec, np.dtype(dtype), hf_quirks
        self.w = {k: np.asarray(v, dtype=self.dtype) for k, v in weights.items()}
        if spec.tie:
            self.w["lm_head.weight"] = self.w["model.embed_tokens.weight"]
        self.qlinear, self.kv_hook = qlinear, kv_hook
        self.noise = (np.random.default_rng(noise[0]), noise[1]) if noise else None

    def _jitter(self, y):
        if self.noise is None:
            return y
        rng, eps = self.noise
        rms = np.sqrt(np.mean(y * y, axis=-1, keepdims=True))
        return (y + eps * rms * rng.standard_normal(y.shape)).astype(self.dtype)

    # ---- pieces -----------------------------------------------------------------------------------
    def _linear(self, name, x, bias=None):
        y = self.qlinear(name + ".weight", x) if self.qlinear else None
        if y is None:
            y = x @ self.w[name + ".weight"].T
        y = np.asarray(y, dtype=self.dtype)
        if bias is not None:
            y = y + self.w[bias]
        return self._jitter(y)

    def _norm(self, x, weight_name):
        return self._jitter(self._rms_norm(x, weight_name))

    def _rms_norm(self, x, weight_name):
        w = self.w[weight_name]
        off = self.s.norm_offset
        if self.hf:  # transformers: RMSNorm in float32, Gemma's (1 + w) in float32 too
            x32 = x.astype(np.float32)
            y = x32 / np.sqrt(np.mean(x32 * x32, axis=-1, keepdims=True) + np.float32(self.s.eps))
            if off:
                return (y * (np.float32(off) + w.astype(np.float32))).astype(self.dtype)
            return w * y.astype(self.dtype)
        t = self.dtype.type
        y = x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + t(self.s.eps))
        return y * (w + t(off)) if off else y * w

    def _rope_tables(self, layer_type, positions):
        p = self.s.ropes[layer_type]
        d = self.s.head_dim
        factor = p["factor"] if p["rope_type"] == "linear" else 1.0
        if self.hf:  # inv_freq and angles in float32, as transformers' rotary embedding computes them
            inv = (np.float32(1.0) / (np.float32(p["rope_theta"]) ** (np.arange(0, d, 2).astype(np.float32)
                                                                        / np.float32(d)))).astype(np.float32)
            if factor != 1.0:
                inv = (inv / np.float32(factor)).astype(np.float32)
            ang = np.outer(positions.astype(np.float32), inv).astype(np.float32)
            ang = np.concatenate([ang, ang], axis=-1)
            return np.cos(ang).astype(self.dtype), np.sin(ang).astype(self.dtype)
        inv = 1.0 / (p["rope_theta"] ** (np.arange(0, d, 2, dtype=np.float64) / d)) / factor
        ang = np.outer(positions.astype(np.float64), inv)
        ang = np.concatenate([ang, ang], axis=-1)
        return np.cos(ang).astype(self.dtype), np.sin(ang).astype(self.dtype)

    @staticmethod
    def _rotate(x, cos, sin):
        h = x.shape[-1] // 2
        rot = np.concatenate([-x[..., h:], x[..., :h]], axis=-1)
        return x * cos + rot * sin

    def _attention(self, q, k, v, qpos, kpos, windowed):
        """q [H, n, d], k/v [Hkv, m, d] -> [n, H*d]."""
        s = self.s
        out = np.empty((q.shape[1], s.heads, s.head_dim), dtype=self.dtype)
        for a in range(0, q.shape[1], 256):  # query chunks; each sees only the keys it may attend to
            b = min(a + 256, q.shape[1])
            lo = max(0, int(qpos[a]) - s.window + 1) if windowed else 0
            hi = int(qpos[b - 1]) + 1
            kp = kpos[lo:hi]
            allowed = kp[None, :] <= qpos[a:b, None]
            if windowed:
                allowed &= kp[None, :] > qpos[a:b, None] - s.window
            out[a:b] = self._attend(q[:, a:b], k[:, lo:hi], v[:, lo:hi], allowed)
        return self._jitter(out.reshape(q.shape[1], -1))

    def _attend(self, q, k, v, allowed):
        s = self.s
        t = self.dtype.type
        group = s.heads // s.kv_heads
        out = np.empty((q.shape[1], s.heads, s.head_dim), dtype=self.dtype)
        for h in range(s.heads):
            sc = (q[h] @ k[h // group].T) * t(s.attn_scale)
            if s.attn_softcap is not None:
                cap = t(s.attn_softcap)
                sc = np.tanh(sc / cap) * cap
            sc = np.where(allowed, sc, -np.inf)
            if self.hf and s.model_type == "gemma2":  # eager attention: softmax in float32
                sc32 = sc.astype(np.float32)
                e = np.exp(sc32 - sc32.max(axis=-1, keepdims=True))
                p = (e / e.sum(axis=-1, keepdims=True)).astype(self.dtype)
            else:
                e = np.exp(sc - sc.max(axis=-1, keepdims=True))
                p = e / e.sum(axis=-1, keepdims=True)
            out[:, h, :] = p @ v[h // group]
        return out

    # ---- forward ----------------------------------------------------------------------------------
    def new_cache(self):
        return {"len": 0, "k": [None] * self.s.layers, "v": [None] * self.s.layers}

    def forward(self, ids, cache=None):
        """Logits [n, vocab] for tokens `ids` at positions cache.len .. cache.len+n-1; extends the cache."""
        s, w = self.s, self.w
        cache = cache if cache is not None else self.new_cache()
        ids = np.asarray(ids, dtype=np.int64)
        n = len(ids)
        qpos = np.arange(cache["len"], cache["len"] + n)
        x = w["model.embed_tokens.weight"][ids]
        if s.embed_scale != 1.0:
            x = x * self.dtype.type(s.embed_scale)
        tables = {lt: self._rope_tables(lt, qpos) for lt in set(s.layer_types)}
        for i in range(s.layers):
            p = f"model.layers.{i}."
            lt = s.layer_types[i]
            h = self._norm(x, p + "input_layernorm.weight")
            bias = (lambda n_: p + f"self_attn.{n_}_proj.bias") if s.qkv_bias else (lambda n_: None)
            q = self._linear(p + "self_attn.q_proj", h, bias("q")).reshape(n, s.heads, s.head_dim)
            k = self._linear(p + "self_attn.k_proj", h, bias("k")).reshape(n, s.kv_heads, s.head_dim)
            v = self._linear(p + "self_attn.v_proj", h, bias("v")).reshape(n, s.kv_heads, s.head_dim)
            if s.qk_norm:
                q = self._norm(q, p + "self_attn.q_norm.weight")
                k = self._norm(k, p + "self_attn.k_norm.weight")
            cos, sin = tables[lt]
            q = self._rotate(q.transpose(1, 0, 2), cos, sin)
            k = self._rotate(k.transpose(1, 0, 2), cos, sin)
            v = v.transpose(1, 0, 2)
            if self.kv_hook:
                k, v = self.kv_hook(i, k, v)
            if cache["k"][i] is not None:
                k = np.concatenate([cache["k"][i], k], axis=1)
                v = np.concatenate([cache["v"][i], v], axis=1)
            cache["k"][i], cache["v"][i] = k, v
            windowed = lt == "sliding_attention" or s.window_all_layers
            a = self._attention(q, k, v, qpos, np.arange(k.shape[1]), windowed and s.window is not None)
            o = self._linear(p + "self_attn.o_proj", a, p + "self_attn.o_proj.bias" if s.o_bias else None)
            if s.sandwich_norms:
                x = x + self._norm(o, p + "post_attention_layernorm.weight")
                h = self._norm(x, p + "pre_feedforward_layernorm.weight")
            else:
                x = x + o
                h = self._norm(x, p + "post_attention_layernorm.weight")
            m = _act(s.act, self._linear(p + "mlp.gate_proj", h)) * self._linear(p + "mlp.up_proj", h)
            m = self._linear(p + "mlp.down_proj", m)
            x = x + (self._norm(m, p + "post_feedforward_layernorm.weight") if s.sandwich_norms else m)
        cache["len"] += n
        x = self._norm(x, "model.norm.weight")
        logits = self._linear("lm_head", x)
        if s.final_softcap is not None:
            cap = self.dtype.type(s.final_softcap)
            logits = np.tanh(logits / cap) * cap
        return logits

    def prefill_and_greedy(self, ids, steps=16):
        """(prompt logits [T, vocab], greedy tokens, the logits row each greedy token was taken from)."""
        cache = self.new_cache()
        logits = self.forward(ids, cache)
        rows, tokens = [logits[-1]], []
        for i in range(steps):
            tokens.append(int(np.argmax(rows[-1])))
            if i + 1 < steps:
                rows.append(self.forward([tokens[-1]], cache)[0])
        return logits, tokens, np.stack(rows)
