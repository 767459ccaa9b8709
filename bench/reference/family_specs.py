"""The five tiny models of the family fixtures (issue #29): their shapes, their config.json in transformers 5's
terms (keyword arguments of the config classes) and as transformers 4 era checkpoints published it, and their
random weights (numpy, so the same seed gives the same model everywhere)."""
import numpy as np

import fixture_io as fio

VOCAB = 512
FIRST_PROMPT_ID = 3  # ids 0..2 are pad/eos/bos-like and never drawn for prompts


class Family:
    def __init__(self, name, arch, model_type, config_class, shape, v5, v4, init, attn_impl="sdpa", gemma=False,
                 vocab=VOCAB):
        self.name, self.arch, self.model_type, self.config_class = name, arch, model_type, config_class
        self.shape, self.v5, self.v4, self.init, self.attn_impl, self.gemma = shape, v5, v4, init, attn_impl, gemma
        self.model_class, self.vocab = arch, vocab

    def v5_kwargs(self):
        s = self.shape
        kw = dict(vocab_size=self.vocab, hidden_size=s["hidden"], intermediate_size=s["intermediate"],
                  num_hidden_layers=s["layers"], num_attention_heads=s["heads"], num_key_value_heads=s["kv_heads"],
                  max_position_embeddings=32768, rms_norm_eps=1e-6, tie_word_embeddings=s["tie"],
                  bos_token_id=2, eos_token_id=1, pad_token_id=0)
        if s.get("head_dim"):
            kw["head_dim"] = s["head_dim"]
        kw.update(self.v5)
        return kw

    def v4_config(self):
        """config.json as a transformers 4 era checkpoint of this family publishes it (top-level rope_theta and
        rope_scaling, torch_dtype, no layer_types where those checkpoints had none)."""
        s = self.shape
        c = {"architectures": [self.arch], "model_type": self.model_type, "vocab_size": self.vocab,
             "hidden_size": s["hidden"], "intermediate_size": s["intermediate"], "num_hidden_layers": s["layers"],
             "num_attention_heads": s["heads"], "num_key_value_heads": s["kv_heads"],
             "max_position_embeddings": 32768, "rms_norm_eps": 1e-6, "tie_word_embeddings": s["tie"],
             "bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0, "initializer_range": 0.02,
             "attention_dropout": 0.0, "use_cache": True, "torch_dtype": "bfloat16", "transformers_version": "4.51.3"}
        if s.get("head_dim"):
            c["head_dim"] = s["head_dim"]
        c.update(self.v4)
        return c


def _qwen3():
    shape = dict(hidden=64, intermediate=128, layers=3, heads=4, kv_heads=2, head_dim=32, tie=True)
    v5 = dict(rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}, use_sliding_window=False,
              attention_bias=False, hidden_act="silu")
    v4 = dict(rope_theta=1000000.0, rope_scaling=None, use_sliding_window=False, sliding_window=None,
              max_window_layers=3, attention_bias=False, hidden_act="silu")
    init = dict(embed=1.0, qk=1.0, v=1.0, o=1.0, mlp=2.5, norm=(1.0, 0.1), qk_norm=(1.8, 0.2),
                final_norm=(1.0, 0.1), head=None)
    return Family("tiny-qwen3", "Qwen3ForCausalLM", "qwen3", "Qwen3Config", shape, v5, v4, init)


def _mistral():
    shape = dict(hidden=64, intermediate=128, layers=3, heads=4, kv_heads=2, tie=False)
    v5 = dict(rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, sliding_window=100, hidden_act="silu")
    v4 = dict(rope_theta=10000.0, sliding_window=100, hidden_act="silu")
    init = dict(embed=1.0, qk=1.6, v=1.0, o=1.0, mlp=1.2, norm=(1.0, 0.1), final_norm=(1.0, 0.1), head=3.0)
    return Family("tiny-mistral-swa", "MistralForCausalLM", "mistral", "MistralConfig", shape, v5, v4, init)


def _qwen2():
    # Layers 0-1 attend to everything, layers 2-3 to the last 192 keys (max_window_layers = 2).
    shape = dict(hidden=64, intermediate=128, layers=4, heads=4, kv_heads=2, tie=False)
    v5 = dict(rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}, use_sliding_window=True,
              sliding_window=192, max_window_layers=2, hidden_act="silu")
    v4 = dict(rope_theta=1000000.0, rope_scaling=None, use_sliding_window=True, sliding_window=192,
              max_window_layers=2, hidden_act="silu")
    init = dict(embed=1.0, qk=1.6, v=1.0, o=1.0, mlp=1.2, norm=(1.0, 0.1), final_norm=(1.0, 0.1), head=3.0,
                bias=0.3)
    return Family("tiny-qwen2-swa", "Qwen2ForCausalLM", "qwen2", "Qwen2Config", shape, v5, v4, init)


def _gemma2():
    # Soft-capping values far below the published 50/30 so that they change the logits of a tiny model.
    shape = dict(hidden=64, intermediate=128, layers=4, heads=4, kv_heads=2, head_dim=32, tie=True)
    common = dict(query_pre_attn_scalar=48, sliding_window=64, attn_logit_softcapping=6.0,
                  final_logit_softcapping=8.0, hidden_activation="gelu_pytorch_tanh", attention_bias=False)
    v5 = dict(common, rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    v4 = dict(common, rope_theta=10000.0, hidden_act="gelu_pytorch_tanh", cache_implementation="hybrid",
              sliding_window_size=64)
    init = dict(embed=0.0625, qk=1.8, v=1.0, o=1.0, mlp=2.0, norm=(0.0, 0.1), post_norm=(3.0, 0.3),
                final_norm=(3.5, 0.2), head=None)
    return Family("tiny-gemma2", "Gemma2ForCausalLM", "gemma2", "Gemma2Config", shape, v5, v4, init,
                  attn_impl="eager", gemma=True)


def _gemma3():
    # Seven layers: five local, one global (layer 5), one local again; the global layer's RoPE is
    # theta 1e6 with linear scaling 8 (as Gemma 3 4B-27B), the local layers' theta 1e4.
    shape = dict(hidden=64, intermediate=128, layers=7, heads=4, kv_heads=2, head_dim=32, tie=True)
    common = dict(query_pre_attn_scalar=48, sliding_window=128, attn_logit_softcapping=None,
                  final_logit_softcapping=None, hidden_activation="gelu_pytorch_tanh", attention_bias=False)
    v5 = dict(common, rope_parameters={
        "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0},
        "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}})
    v4 = dict(common, rope_theta=1000000.0, rope_local_base_freq=10000.0,
              rope_scaling={"factor": 8.0, "rope_type": "linear"}, sliding_window_pattern=6,
              cache_implementation="hybrid")
    init = dict(embed=0.125, qk=1.0, v=1.0, o=1.0, mlp=1.2, norm=(0.0, 0.1), post_norm=(1.0, 0.2),
                qk_norm=(1.0, 0.2), final_norm=(2.0, 0.2), head=None)
    return Family("tiny-gemma3", "Gemma3ForCausalLM", "gemma3_text", "Gemma3TextConfig", shape, v5, v4, init,
                  gemma=True)


FAMILIES = [_qwen3(), _mistral(), _qwen2(), _gemma2(), _gemma3()]


def make_weights(fam, seed):
    """{HF tensor name: float64 array of bf16-representable values}; matrices are N(0, gain^2 / fan_in)."""
    rng = np.random.default_rng(seed)
    s, g = fam.shape, fam.init
    h, inter, hd = s["hidden"], s["intermediate"], s.get("head_dim") or s["hidden"] // s["heads"]
    qd, kvd = s["heads"] * hd, s["kv_heads"] * hd
    w = {}

    def mat(name, out, inp, gain):
        w[name] = rng.normal(0.0, gain / np.sqrt(inp), size=(out, inp))

    def vec(name, n, mean_std):
        # Gemma stores norm weights as offsets from 1 (the layer multiplies by 1 + w).
        mean, std = mean_std
        w[name] = mean + std * rng.standard_normal(n)

    w["model.embed_tokens.weight"] = rng.normal(0.0, g["embed"], size=(fam.vocab, h))
    for i in range(s["layers"]):
        p = f"model.layers.{i}."
        vec(p + "input_layernorm.weight", h, g["norm"])
        mat(p + "self_attn.q_proj.weight", qd, h, g["qk"])
        mat(p + "self_attn.k_proj.weight", kvd, h, g["qk"])
        mat(p + "self_attn.v_proj.weight", kvd, h, g["v"])
        mat(p + "self_attn.o_proj.weight", h, qd, g["o"])
        if "bias" in g:
            for n_, d in (("q", qd), ("k", kvd), ("v", kvd)):
                w[p + f"self_attn.{n_}_proj.bias"] = g["bias"] * rng.standard_normal(d)
        if "qk_norm" in g:
            vec(p + "self_attn.q_norm.weight", hd, g["qk_norm"])
            vec(p + "self_attn.k_norm.weight", hd, g["qk_norm"])
        # Gemma's post-attention and post-feedforward norms set how much each layer adds to the residual.
        vec(p + "post_attention_layernorm.weight", h, g.get("post_norm", g["norm"]))
        if fam.gemma:
            vec(p + "pre_feedforward_layernorm.weight", h, g["norm"])
            vec(p + "post_feedforward_layernorm.weight", h, g["post_norm"])
        mat(p + "mlp.gate_proj.weight", inter, h, g["mlp"])
        mat(p + "mlp.up_proj.weight", inter, h, g["mlp"])
        mat(p + "mlp.down_proj.weight", h, inter, g["mlp"])
    vec("model.norm.weight", h, g["final_norm"])
    if not s["tie"]:
        mat("lm_head.weight", fam.vocab, h, g["head"])
    return {k: fio.bf16_round(v) for k, v in w.items()}
