"""Tables and plot of a slow-link sweep (bench/slowlink/sweep.sh): python3 bench/slowlink/report.py OUT [SVG].

For each link: the measured pass-KV and pass-Q times at every miss rate, which is faster, what auto chose (the
heuristic, Algorithm 5 with the All2All term, fed by the calibration over that link) and the planner's prediction;
then where each curve crosses -- measured, predicted, and where the heuristic switches -- and how often auto picked
the faster ring. The auto run is a second run of the ring it picks: a ring's time is the best of its runs (as bench
--repeat takes the best), and the two runs' ratio shows how much the machine's load moved a time. The plot (SVG, no
dependencies) is pass-KV time over pass-Q time against the miss rate, as the paper's Figure 9: measured points, the
planner's curve dashed, the heuristic's switch as a vertical line.
"""
import glob
import json
import math
import os
import re
import sys

from scale import GPU_ATTENTION_FLOPS, GPU_CONTEXT, GPU_ELEMENT_BYTES

COLOURS = {"1": "#d62728", "3": "#1f77b4", "10": "#2ca02c"}
TIE = 0.02  # closer than this, the two rings are a tie: a wrong pick costs at most that


def load(path):
    with open(path) as f:
        return json.load(f)


def crossing(points):
    """The miss rate where ratio = pass-KV / pass-Q first falls through 1 (log-interpolated), or None."""
    for (m0, r0), (m1, r1) in zip(points, points[1:]):
        if r0 >= 1 > r1:
            f = math.log(r0) / (math.log(r0) - math.log(r1)) if r0 != r1 else 0
            return math.exp(math.log(m0) + f * (math.log(m1) - math.log(m0)))
    return None


def heuristic(t, p, ranks, heads, kv_heads, e, c, bw):
    """StrategyChoice.Decide: pass-KV if its transfer hides, T >= N*C*NKV*e / (2*NH*BW), or if the miss rate is at least
    2*NKV/NH - 4*T*BW / (N*C*e); pass-Q otherwise."""
    hide = ranks * c * kv_heads * e / (2 * heads * bw)
    threshold = 2 * kv_heads / heads - 4 * t * bw / (ranks * c * e)
    return "pass-kv" if t >= hide or t / (t + p) >= threshold else "pass-q"


def link(out, g):
    sweep = load(f"{out}/sweep-{g}.json")["points"]
    plan = load(f"{out}/plan-{g}.json")["rows"]
    cal = load(f"{out}/cal-{g}.json")
    config = load(os.path.join(os.path.dirname(os.path.abspath(__file__)), "model", "config.json"))
    by_rate = {}
    for p in sweep:
        context, cached = p["context"], p.get("cached_tokens", 0)
        key = (context - cached) / context
        entry = by_rate.setdefault(key, {"new": context - cached, "pass-kv": [], "pass-q": []})
        entry[p["strategy"]].append(p["ttft_ms"])
        if "auto_choice" in p:
            entry["auto"] = p["strategy"]
    # auto's inputs: the largest unmasked block's attention rate and the ring, both from the calibration over this link.
    attention = cal["attention_tflops"]["full"][-1][1] * 1e12
    context, ranks = sweep[0]["context"], sweep[0]["ranks"]
    decide = lambda t: heuristic(t, context - t, ranks, config["num_attention_heads"], config["num_key_value_heads"],
                                 cal["activation_bytes"], attention, cal["ring"]["gbps"] * 1e9)
    rows = []
    for m in sorted(by_rate):
        e = by_rate[m]
        kv, q = min(e["pass-kv"]), min(e["pass-q"])
        repeated = e[e["auto"]]
        assert decide(e["new"]) == e["auto"], f"{g} GB/s, miss rate {m}: auto chose {e['auto']}, the formula {decide(e['new'])}"
        model = min(plan, key=lambda r: abs(r["miss_rate"] - m))
        rows.append({
            "miss": m, "new": e["new"], "kv": kv, "q": q, "ratio": kv / q, "faster": "pass-kv" if kv <= q else "pass-q",
            "auto": e["auto"], "repeat": repeated[1] / repeated[0], "model_ratio": model["pass_kv"]["ttft_s"] / model["pass_q"]["ttft_s"],
        })
    grid = sorted((r["miss_rate"], r["pass_kv"]["ttft_s"] / r["pass_q"]["ttft_s"]) for r in plan)
    # The smallest miss rate from which auto picks pass-KV at every larger one, token by token.
    picks = [decide(t) for t in range(1, context)]
    switch = next((t / context for t in range(1, context) if all(x == "pass-kv" for x in picks[t - 1:])), None)
    # What the link measured over the shaping stands for, scaled back as scale.py scales forward (with the rate measured here).
    equivalent = cal["ring"]["gbps"] * 1e9 * GPU_ELEMENT_BYTES * GPU_ATTENTION_FLOPS / (cal["activation_bytes"] * attention) \
        * sweep[0]["context"] / GPU_CONTEXT / 1e9
    return {
        "g": g, "rows": rows, "grid": grid, "ring": cal.get("ring"), "attention": attention / 1e12, "equivalent": equivalent,
        "measured_cross": crossing([(r["miss"], r["ratio"]) for r in rows]),
        "model_cross": crossing(grid), "switch": switch,
    }


def pct(x):
    return "-" if x is None else f"{100 * x:.1f}%"


def markdown(links, out):
    lines = []
    for L in links:
        ring = L["ring"]
        lines.append(f"**{L['g']} GB/s-equivalent** (link measured at {ring['gbps'] * 1e3:.3f} MB/s + {ring['latency_us']:.0f} µs; "
                     f"attention {L['attention'] * 1e3:.1f} GFLOP/s a rank; together {L['equivalent']:.1f} GB/s-equivalent)\n")
        lines.append("| miss rate | new tokens | pass-KV (ms) | pass-Q (ms) | KV / Q | planner KV / Q | faster | auto chose | its two runs |")
        lines.append("|---|---|---|---|---|---|---|---|---|")
        for r in L["rows"]:
            mark = "" if r["auto"] == r["faster"] else (" (tie)" if abs(r["ratio"] - 1) < TIE else " **wrong**")
            lines.append(f"| {pct(r['miss'])} | {r['new']} | {r['kv']:.0f} | {r['q']:.0f} | {r['ratio']:.3f} | {r['model_ratio']:.3f} | "
                         f"{r['faster']} | {r['auto']}{mark} | {r['repeat']:.2f} |")
        lines.append("")
    lines.append("| link (GB/s-equivalent) | measured crossover | planner's crossover | heuristic switches at | auto picked the faster | worst miss |")
    lines.append("|---|---|---|---|---|---|")
    total = right = 0
    for L in links:
        rows = L["rows"]
        ok = [r for r in rows if r["auto"] == r["faster"] or abs(r["ratio"] - 1) < TIE]
        strict = sum(r["auto"] == r["faster"] for r in rows)
        total += len(rows)
        right += strict
        worst = max((max(r["ratio"], 1 / r["ratio"]) - 1 for r in rows if r["auto"] != r["faster"]), default=0)
        lines.append(f"| {L['g']} | {pct(L['measured_cross'])} | {pct(L['model_cross'])} | {pct(L['switch'])} | "
                     f"{strict} of {len(rows)} ({len(ok)} counting ties within {TIE:.0%}) | {worst:.1%} slower |")
    lines.append(f"\nauto picked the faster ring at {right} of {total} points.")
    log = os.path.join(out, "log.txt")
    if os.path.exists(log):
        loads = [float(x) for x in re.findall(r"load ([0-9.]+)\]", open(log).read())]
        lines.append(f"1-minute load during the sweep: {min(loads):.2f} to {max(loads):.2f} (log.txt).")
    return "\n".join(lines)


def svg(links, path):
    w, h, left, right, top, bottom = 720, 420, 70, 20, 30, 60
    ratios = [r["ratio"] for L in links for r in L["rows"]] + [r for L in links for _, r in L["grid"]]
    ymin, ymax = min(0.5, min(ratios)), max(2.0, max(ratios))
    xmin, xmax = 0.005, 1.0

    def x(m):
        return left + (math.log(m) - math.log(xmin)) / (math.log(xmax) - math.log(xmin)) * (w - left - right)

    def y(r):
        r = min(max(r, ymin), ymax)
        return top + (math.log(ymax) - math.log(r)) / (math.log(ymax) - math.log(ymin)) * (h - top - bottom)

    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
         f'<rect width="{w}" height="{h}" fill="white"/>',
         f'<text x="{w / 2}" y="18" text-anchor="middle" font-size="14">pass-KV time / pass-Q time, 2 CPU ranks over shaped links</text>']
    for m in [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]:
        s.append(f'<line x1="{x(m):.1f}" y1="{top}" x2="{x(m):.1f}" y2="{h - bottom}" stroke="#eee"/>')
        s.append(f'<text x="{x(m):.1f}" y="{h - bottom + 16}" text-anchor="middle">{m * 100:g}%</text>')
    for r in [0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0]:
        if ymin <= r <= ymax:
            s.append(f'<line x1="{left}" y1="{y(r):.1f}" x2="{w - right}" y2="{y(r):.1f}" stroke="{"#888" if r == 1 else "#eee"}"/>')
            s.append(f'<text x="{left - 6}" y="{y(r) + 4:.1f}" text-anchor="end">{r:g}</text>')
    s.append(f'<text x="{w / 2}" y="{h - 22}" text-anchor="middle">KV cache miss rate T/(T+P), log scale (above 1: pass-Q faster)</text>')
    for i, L in enumerate(links):
        c = COLOURS.get(L["g"], "#000")
        model = " ".join(f"{x(m):.1f},{y(r):.1f}" for m, r in L["grid"])
        s.append(f'<polyline points="{model}" fill="none" stroke="{c}" stroke-dasharray="5,4" stroke-width="1.5"/>')
        measured = " ".join(f"{x(r['miss']):.1f},{y(r['ratio']):.1f}" for r in L["rows"])
        s.append(f'<polyline points="{measured}" fill="none" stroke="{c}" stroke-width="2"/>')
        for r in L["rows"]:
            s.append(f'<circle cx="{x(r["miss"]):.1f}" cy="{y(r["ratio"]):.1f}" r="3.5" fill="{c}"/>')
        if L["switch"]:
            s.append(f'<line x1="{x(L["switch"]):.1f}" y1="{top}" x2="{x(L["switch"]):.1f}" y2="{h - bottom}" stroke="{c}" stroke-dasharray="1,3" stroke-width="2"/>')
        ly = h - bottom - 62 + 16 * i
        s.append(f'<line x1="{left + 12}" y1="{ly - 4}" x2="{left + 37}" y2="{ly - 4}" stroke="{c}" stroke-width="2"/>')
        s.append(f'<text x="{left + 42}" y="{ly}">{L["g"]} GB/s-equivalent</text>')
    s.append(f'<text x="{left + 12}" y="{h - bottom - 10}">solid: measured; dashed: the planner; dotted: where auto switches to pass-KV</text>')
    s.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(s) + "\n")


def main():
    out = sys.argv[1]
    gs = sorted((re.search(r"sweep-(.+)\.json", p).group(1) for p in glob.glob(f"{out}/sweep-*.json")), key=float)
    links = [link(out, g) for g in gs]
    print(markdown(links, out))
    if len(sys.argv) > 2:
        svg(links, sys.argv[2])


if __name__ == "__main__":
    main()
