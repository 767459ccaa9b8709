"""File formats and bookkeeping shared by the fixture scripts; numpy only, so it runs without torch.

safetensors is written and read here directly (8-byte little-endian header length, a JSON header, the raw
little-endian tensor bytes), which also covers F8_E4M3 tensors, stored as their uint8 codes.
"""
import json
import os
import sys
import tarfile
import time
import traceback

import numpy as np

_NP_OF = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
          "U8": np.uint8, "BF16": np.uint16, "F8_E4M3": np.uint8}


class Tensor:
    """A tensor as safetensors stores it: dtype name, shape, and the array of its stored elements
    (uint16 bit patterns for BF16, uint8 codes for F8_E4M3)."""

    def __init__(self, dtype, array):
        if dtype not in _NP_OF:
            raise ValueError(f"unknown safetensors dtype {dtype}")
        self.dtype = dtype
        self.array = np.ascontiguousarray(array, dtype=_NP_OF[dtype])

    @property
    def shape(self):
        return list(self.array.shape)


def f32(a):
    return Tensor("F32", np.asarray(a, dtype=np.float32))


def i64(a):
    return Tensor("I64", np.asarray(a, dtype=np.int64))


def bf16(values):
    """A BF16 tensor holding `values` rounded to bfloat16 (round to nearest, ties to even, via float32)."""
    return Tensor("BF16", bf16_bits(values))


def bf16_bits(values):
    u = np.ascontiguousarray(np.asarray(values, dtype=np.float32)).view(np.uint32).astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def bf16_round(values):
    """`values` rounded to bfloat16, as float64."""
    return bf16_to_float(bf16_bits(values))


def bf16_to_float(bits):
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def to_float(t):
    """The tensor's values as float64 (F8_E4M3 decoded exactly)."""
    if t.dtype == "BF16":
        return bf16_to_float(t.array)
    if t.dtype == "F8_E4M3":
        from e4m3 import decode
        return decode(t.array)
    return t.array.astype(np.float64)


def save_safetensors(path, tensors, metadata=None):
    """Writes {name: Tensor} with the tensors in name order, as the safetensors library lays them out."""
    header, offset, blobs = {}, 0, []
    for name in sorted(tensors):
        t = tensors[name]
        data = t.array.astype(t.array.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": t.dtype, "shape": t.shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    header["__metadata__"] = dict(metadata or {"format": "pt"})
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for b in blobs:
            f.write(b)


def load_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, h in header.items():
        if name == "__metadata__":
            continue
        begin, end = h["data_offsets"]
        arr = np.frombuffer(raw[base + begin:base + end], dtype=np.dtype(_NP_OF[h["dtype"]]).newbyteorder("<"))
        out[name] = Tensor(h["dtype"], arr.reshape(h["shape"]))
    return out


def load_model_floats(model_dir):
    """Every tensor of a model directory's safetensors files, as float64 arrays."""
    files = sorted(f for f in os.listdir(model_dir) if f.endswith(".safetensors") and f.startswith("model"))
    if not files:
        raise FileNotFoundError(f"{model_dir}: no model*.safetensors")
    out = {}
    for f in files:
        for name, t in load_safetensors(os.path.join(model_dir, f)).items():
            out[name] = to_float(t)
    return out


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=False)
        f.write("\n")


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def top2_margins(logits):
    """Top-1 minus top-2 logit for each row of a [rows, vocab] array."""
    part = np.partition(np.asarray(logits, dtype=np.float64), -2, axis=-1)
    return part[..., -1] - part[..., -2]


def relative_error(actual, expected):
    """max |a - e| / max |e|, the measure the C# parity tests use."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))


def write_tar_xz(out_dir, subdir, tar_name):
    """One tar.xz of out_dir/subdir (paths inside start with subdir/), or a tar.gz where this Python has no
    lzma; returns its path."""
    try:
        import lzma  # noqa: F401
        path, mode, kw = os.path.join(out_dir, tar_name), "w:xz", {"preset": 9}
    except ImportError:
        path, mode, kw = os.path.join(out_dir, tar_name.replace(".tar.xz", ".tar.gz")), "w:gz", {}
    with tarfile.open(path, mode, **kw) as tar:
        tar.add(os.path.join(out_dir, subdir), arcname=subdir)
    return path


def dir_bytes(path):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


class Runner:
    """Runs independent jobs, logging each failure with its traceback and going on with the rest."""

    def __init__(self, log_path):
        self.log = open(log_path, "a", encoding="utf-8")
        self.results, self.failures = {}, {}

    def say(self, *parts):
        line = " ".join(str(p) for p in parts)
        print(line, flush=True)
        self.log.write(line + "\n")
        self.log.flush()

    def run(self, name, fn, *args, **kwargs):
        start = time.time()
        self.say(f"== {name}")
        try:
            self.results[name] = fn(*args, **kwargs)
            self.say(f"== {name}: done in {time.time() - start:.1f} s")
        except Exception as e:  # one job's failure must not stop the others
            self.failures[name] = f"{type(e).__name__}: {e}"
            self.say(f"== {name}: FAILED after {time.time() - start:.1f} s: {type(e).__name__}: {e}")
            self.log.write(traceback.format_exc() + "\n")
            traceback.print_exc(file=sys.stdout)
        return self.results.get(name)
