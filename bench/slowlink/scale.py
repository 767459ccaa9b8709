"""The CPU link rate (bytes/s) that stands for a GPU link of G GB/s, for bench/slowlink/sweep.sh.

Everything the pass-KV / pass-Q choice depends on -- a ring step's transfer against its attention, pass-Q's all-to-all,
both tests of the heuristic -- is fixed by the miss rate, the rank count, the head counts and one number,
e * C / (BW * S): element bytes times attention FLOP/s over link bytes/s times context tokens. The CPU run keeps that
number equal to a GPU's: the paper's H100 (FA3 at 540 TFLOP/s, bf16) with a 131,072-token context (its Table 4), so
BW_cpu = G * (e_cpu * C_cpu) / (e_gpu * C_gpu) * (S_gpu / S_cpu).
usage: python3 scale.py CPU_CALIBRATION.json G CONTEXT_TOKENS
"""
import json
import sys

GPU_ATTENTION_FLOPS = 540e12
GPU_ELEMENT_BYTES = 2
GPU_CONTEXT = 131072


def cpu_rate(calibration):
    """The attention rate of the largest unmasked block the calibration measured (a ring step's shape), FLOP/s."""
    return calibration["attention_tflops"]["full"][-1][1] * 1e12


def link_bytes_per_second(calibration, gbps, context):
    e_cpu = calibration["activation_bytes"]
    return gbps * 1e9 * (e_cpu * cpu_rate(calibration)) / (GPU_ELEMENT_BYTES * GPU_ATTENTION_FLOPS) * (GPU_CONTEXT / context)


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        cal = json.load(f)
    print(int(link_bytes_per_second(cal, float(sys.argv[2]), int(sys.argv[3]))))
