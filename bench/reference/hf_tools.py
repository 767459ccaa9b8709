"""The transformers side of the fixture scripts: save a model directory the way transformers 5 does, and run
a directory in float64 on the CPU (logits, greedy decoding on transformers' own KV cache)."""
import os
import shutil
import tempfile

import numpy as np

import fixture_io as fio


def available():
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
        return True
    except Exception:
        return False


def versions():
    import torch
    import transformers
    return {"torch": torch.__version__, "transformers": transformers.__version__}


def save_model_dir(config_class, model_class, kwargs, weights, out_dir):
    """Builds the model with transformers from config kwargs, loads `weights` (float64 arrays of bf16 values,
    HF names) strictly, and writes config.json + model.safetensors in bf16 with save_pretrained. Fails if the
    file written does not hold exactly these weights."""
    import torch
    import transformers
    cfg = getattr(transformers, config_class)(**kwargs)
    cfg.architectures = [model_class]
    model = getattr(transformers, model_class)(cfg)
    expected = model.state_dict()
    tied = {"lm_head.weight": "model.embed_tokens.weight"} if getattr(cfg, "tie_word_embeddings", False) else {}
    sd = {}
    for key in expected:
        src = key if key in weights else tied.get(key)
        if src not in weights:
            raise KeyError(f"{model_class} wants {key}, which the fixture's weights do not have")
        if tuple(expected[key].shape) != weights[src].shape:
            raise ValueError(f"{key}: transformers shape {tuple(expected[key].shape)}, fixture {weights[src].shape}")
        sd[key] = torch.from_numpy(weights[src]).to(torch.float32)
    unused = set(weights) - {tied.get(k, k) for k in expected}
    if unused:
        raise KeyError(f"{model_class} has no place for {sorted(unused)}")
    model.load_state_dict(sd, strict=True)
    model = model.to(torch.bfloat16)
    model.save_pretrained(out_dir)
    written = fio.load_model_floats(out_dir)
    for name, w in weights.items():
        if name not in written:
            raise KeyError(f"save_pretrained did not write {name}")
        if not np.array_equal(written[name], w):
            raise ValueError(f"save_pretrained changed {name}")


class HfModel:
    """A model directory loaded by transformers in float64."""

    def __init__(self, model_dir, model_class, attn_impl="sdpa"):
        import torch
        import transformers
        self.torch = torch
        cls = getattr(transformers, model_class)
        try:
            self.model = cls.from_pretrained(model_dir, dtype=torch.float64, attn_implementation=attn_impl)
        except TypeError:
            self.model = cls.from_pretrained(model_dir, torch_dtype=torch.float64, attn_implementation=attn_impl)
        self.model.eval()
        first = next(self.model.parameters())
        if first.dtype != torch.float64:
            raise TypeError(f"{model_dir} loaded as {first.dtype}, not float64")

    def weights_equal(self, weights):
        """Names whose loaded values differ from `weights` (a guard against silent conversions on load)."""
        sd = self.model.state_dict()
        return [k for k, w in weights.items() if k in sd and not np.array_equal(sd[k].numpy(), w)]

    def logits(self, ids):
        with self.torch.no_grad():
            out = self.model(input_ids=self.torch.tensor([list(map(int, ids))]), use_cache=False)
        return out.logits[0].double().numpy()

    def greedy(self, ids, steps=16):
        """Greedy tokens decoded one at a time on transformers' KV cache (sliding layers included), and the
        logits row each came from. No EOS stop: the engine's parity test does not stop either."""
        torch = self.torch
        with torch.no_grad():
            out = self.model(input_ids=torch.tensor([list(map(int, ids))]), use_cache=True)
            past, rows, tokens = out.past_key_values, [out.logits[0, -1].double().numpy()], []
            for i in range(steps):
                tokens.append(int(np.argmax(rows[-1])))
                if i + 1 == steps:
                    break
                pos = len(ids) + i
                out = self._step(tokens[-1], pos, past)
                past = out.past_key_values
                rows.append(out.logits[0, -1].double().numpy())
        return tokens, np.stack(rows)

    def _step(self, token, pos, past):
        torch = self.torch
        kw = dict(input_ids=torch.tensor([[token]]), past_key_values=past, use_cache=True)
        try:
            return self.model(**kw, position_ids=torch.tensor([[pos]]), cache_position=torch.tensor([pos]))
        except TypeError:  # a transformers without cache_position in this model's forward
            return self.model(**kw, position_ids=torch.tensor([[pos]]))


def with_config(model_dir, config_path):
    """A temporary copy of model_dir whose config.json is config_path; the caller removes it."""
    tmp = tempfile.mkdtemp(prefix="fixture-config-")
    for f in os.listdir(model_dir):
        if f.endswith(".safetensors") and f != "reference.safetensors":
            os.symlink(os.path.abspath(os.path.join(model_dir, f)), os.path.join(tmp, f))
    shutil.copyfile(config_path, os.path.join(tmp, "config.json"))
    return tmp
