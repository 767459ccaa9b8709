#!/usr/bin/env python3
"""Compile CUDA kernels with NVRTC for sm_90a on a machine without a GPU, as KernelCompiler does at run time (headers
put in place, --std=c++17 -default-device --use_fast_math), and print ptxas's report (registers, spills, wgmma
serialisation warnings C7512-C7515). NVRTC is Debian trixie's non-free libnvrtc12 (12.4); --fetch gets it, with the
CUDA headers, into --root (default /tmp/longctx-nvrtc; about 80 MB kept of a 950 MB download).

  python3 scripts/check-kernels.py --fetch                       # once
  python3 scripts/check-kernels.py fp8_quant.cu gemv_fp8.cu:ROWS=1,ACCUMULATE=0
  python3 scripts/check-kernels.py --fp8                          # every FP8 kernel in the variants the backend compiles

A kernel argument is a file of src/LongCtx.Cuda/Kernels, optionally with comma-separated defines after a colon.
Exit status 1 if any compile failed.
"""
import argparse
import ctypes
import os
import re
import subprocess
import sys

KERNELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src", "LongCtx.Cuda", "Kernels")

# The variants CudaBackend compiles for FP8 (kept in step with Ops/CudaBackend.Fp8*.cs).
FP8_VARIANTS = (
    ["fp8_quant.cu"]
    + [f"gemv_fp8.cu:ROWS={r},GROUPS={g}" for r in range(1, 17) for g in (0, 1)]
    + [f"decode.cu:HEAD_DIM={d},LANES={16 if d % 32 == 0 else 8},GROUP={g},HEADS={g},KV_FP8=1" for d in (32, 48, 64, 128) for g in (1, 4, 8)]
)


def fetch(root):
    os.makedirs(root, exist_ok=True)
    sources = os.path.join(root, "trixie.sources")
    with open(sources, "w") as f:
        f.write("Types: deb\nURIs: http://deb.debian.org/debian\nSuites: trixie\nComponents: main contrib non-free\n"
                "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
    apt = ["-o", f"Dir::Etc::sourcelist={sources}", "-o", "Dir::Etc::sourceparts=-",
           "-o", f"Dir::State::Lists={root}/apt/lists", "-o", f"Dir::Cache={root}/apt/cache"]
    os.makedirs(f"{root}/apt/lists/partial", exist_ok=True)
    os.makedirs(f"{root}/apt/cache/archives/partial", exist_ok=True)
    subprocess.run(["apt-get", *apt, "update"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", *apt, "download", "libnvrtc12", "libnvrtc-builtins12.4", "nvidia-cuda-dev"], check=True, cwd=root)
    for deb in os.listdir(root):
        if not deb.endswith(".deb"):
            continue
        path = os.path.join(root, deb)
        if deb.startswith("nvidia-cuda-dev"):  # only the headers
            subprocess.run(f"dpkg-deb --fsys-tarfile {path} | tar -x -C {root} --wildcards './usr/include/*'", shell=True, check=True)
        else:
            subprocess.run(["dpkg-deb", "-x", path, root], check=True)
        os.remove(path)


def source_of(name):
    with open(os.path.join(KERNELS, name), encoding="utf-8") as f:
        text = f.read()
    return re.sub(r'^#include "(\w+\.cuh)"[ \t]*$', lambda m: source_of(m.group(1)), text, flags=re.M)


def compile_one(nvrtc, spec, include, arch):
    name, _, defines = spec.partition(":")
    src = source_of(name).encode()
    prog = ctypes.c_void_p()
    if nvrtc.nvrtcCreateProgram(ctypes.byref(prog), src, name.encode(), 0, None, None):
        return False, "nvrtcCreateProgram failed"
    opts = [f"--gpu-architecture={arch}", "--std=c++17", "-default-device", "--use_fast_math", f"-I{include}",
            "--ptxas-options=-v"] + [f"-D{d}" for d in defines.split(",") if d]
    arr = (ctypes.c_char_p * len(opts))(*[o.encode() for o in opts])
    status = nvrtc.nvrtcCompileProgram(prog, len(opts), arr)
    size = ctypes.c_size_t()
    nvrtc.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value + 1)
    nvrtc.nvrtcGetProgramLog(prog, log)
    nvrtc.nvrtcDestroyProgram(ctypes.byref(prog))
    return status == 0, log.value.decode(errors="replace").strip()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kernels", nargs="*")
    ap.add_argument("--root", default="/tmp/longctx-nvrtc")
    ap.add_argument("--arch", default="sm_90a")
    ap.add_argument("--fetch", action="store_true")
    ap.add_argument("--fp8", action="store_true", help="the FP8 kernels in every variant the backend compiles")
    ap.add_argument("--quiet", action="store_true", help="print only failures and ptxas warnings")
    args = ap.parse_args()
    if args.fetch:
        fetch(args.root)
    specs = args.kernels + (FP8_VARIANTS if args.fp8 else [])
    if not specs:
        return 0
    lib = os.path.join(args.root, "usr/lib/x86_64-linux-gnu")
    # NVRTC dlopens its builtins by name: loaded first, globally, they are found without LD_LIBRARY_PATH.
    ctypes.CDLL(os.path.join(lib, "libnvrtc-builtins.so.12.4"), mode=ctypes.RTLD_GLOBAL)
    nvrtc = ctypes.CDLL(os.path.join(lib, "libnvrtc.so.12"))
    failed = 0
    for spec in specs:
        ok, log = compile_one(nvrtc, spec, os.path.join(args.root, "usr/include"), args.arch)
        failed += not ok
        lines = [l for l in log.splitlines() if l.strip()]
        notable = [l for l in lines if "error" in l or "warning" in l or "spill" in l.lower() and not " 0 bytes spill" in l]
        print(f"{'ok  ' if ok else 'FAIL'} {spec}")
        for l in (notable if args.quiet else lines):
            if args.quiet or "Used" in l or "spill" in l or "error" in l or "warning" in l:
                print(f"     {l}")
    print(f"{len(specs) - failed} of {len(specs)} compiled")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
