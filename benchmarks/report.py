"""Markdown tables (and the list of targets met) from the JSON that ``bench.py`` writes.

``python benchmarks/report.py benchmarks/results/results.json`` prints them again.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

MIB = 2**20


def _ms(entry: dict | None, digits: int = 1) -> str:
    if not entry:
        return "—"
    if "skipped" in entry:
        return "skipped"
    return f"{entry['median_s'] * 1e3:,.{digits}f}"


def _t(entry: dict | None) -> float | None:
    return entry.get("median_s") if entry and "median_s" in entry else None


def _ratio(a: float | None, b: float | None, fmt: str = "{:.2f}×") -> str:
    return fmt.format(a / b) if a and b else "—"


def _mem(results: dict, key: str, ref_bytes: int | None = None) -> str:
    m = results.get("memory", {}).get(key)
    if not m:
        return "—"
    if "error" in m:
        return "error"
    text = f"{m['peak_rss_growth_bytes'] / MIB:,.0f}"
    if "tracemalloc_peak_bytes" in m:
        text += f" ({m['tracemalloc_peak_bytes'] / MIB:,.0f})"
    if ref_bytes:
        text += f" = {m['peak_rss_growth_bytes'] / ref_bytes:.2f}×D"
    return text


def _size_label(results: dict, size: str) -> str:
    s = results["sizes"][size]
    return f"{size}: N={s['N']}, M={s['M']}, widths {s['hidden']}, Q={s['Q']}"


def targets(results: dict) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for every performance target that this run measured."""
    rows: list[tuple[str, str, bool | None]] = []
    jac = results.get("jacobian", {})
    for size in ("medium", "large"):
        m = jac.get(size, {}).get("methods", {})
        zl, af = _t(m.get("zlnotes")), _t(m.get("alloc+fill"))
        if zl and af:
            rows.append((f"jacobian ≤ 1.5× alloc+fill ({size})", f"{zl / af:.2f}×", zl / af <= 1.5))
        mem = results.get("memory", {}).get(f"jacobian/{size}/zlnotes")
        if mem and "tracemalloc_peak_bytes" in mem:
            s = results["sizes"][size]
            inputs = s["N"] * s["M"] * 8
            bound = jac[size]["bytes"] + inputs
            ratio = mem["tracemalloc_peak_bytes"] / bound
            rows.append((f"jacobian peak memory ≤ 1.2× (D + inputs) ({size})", f"{ratio:.3f}× (tracemalloc)", ratio <= 1.2))
    m = jac.get("medium", {}).get("methods", {})
    zl, jx = _t(m.get("zlnotes")), _t(m.get("jax"))
    if zl and jx:
        rows.append(("jacobian ≥ 1.3× faster than JAX (medium)", f"{jx / zl:.2f}×", jx / zl >= 1.3))
    ntk = results.get("ntk", {})
    m = ntk.get("ntk", {}).get("methods", {})
    zl, dd = _t(m.get("zlnotes")), _t(m.get("D @ D.T"))
    if zl and dd:
        rows.append(("ntk ≥ 5× faster than D @ D.T (ntk size)", f"{dd / zl:.1f}×", dd / zl >= 5))
    m = ntk.get("large", {}).get("methods", {})
    zl, fl = _t(m.get("zlnotes")), _t(m.get("gram floor"))
    if zl and fl:
        rows.append(("ntk within 3× of the Gram identity's floor (large)", f"{zl / fl:.2f}×", zl / fl <= 3))
    nt = results.get("neural_tangents", {}).get("ntk", {}).get("large", {}).get("methods", {})
    best = [(k, _t(v)) for k, v in nt.items() if k.startswith("nt ") and _t(v)]
    if best and _t(nt.get("zlnotes")):
        name, t = min(best, key=lambda kv: kv[1])
        r = t / _t(nt["zlnotes"])
        rows.append((f"ntk ≥ 3× faster than neural-tangents' best (large; {name[3:]})", f"{r:.1f}×", r >= 3))
    elif "neural_tangents" in results:
        rows.append(("ntk ≥ 3× faster than neural-tangents' best (large)", "not measured", None))
    for size, r in results.get("rank", {}).items():
        m = r["methods"]
        zl, mr = _t(m.get("zlnotes")), _t(m.get("matrix_rank(jacobian)"))
        same = r["rank zlnotes"] == r["rank matrix_rank"]
        if zl and mr:
            rows.append((f"jacobian_rank ≥ 10× faster than matrix_rank(jacobian), same rank ({size})",
                         f"{mr / zl:.1f}×, ranks {r['rank zlnotes']} / {r['rank matrix_rank']}", mr / zl >= 10 and same))
    for key, g in results.get("grad", {}).items():
        m = g["methods"]
        cf, cg, jx = _t(m.get("zlnotes CostFunction")), _t(m.get("zlnotes cost_gradient")), _t(m.get("jax"))
        gemm, act = _t(m.get("GEMM floor")), _t(m.get("activation floor"))
        torch = [t for k, v in m.items() if k.startswith("torch") and (t := _t(v))]
        if cf and cg and jx:
            bound = (f"; the activation floor (numpy, one thread) is {act / cf:.0%} of CostFunction's time, and "
                     f"CostFunction's time minus it is {(cf - act) / jx:.2f}× JAX's whole gradient (its own activation included)"
                     if act and act < cf else "")
            rows.append((f"gradient at least as fast as jax.grad+jit ({key})",
                         f"CostFunction {jx / cf:.2f}×, cost_gradient {jx / cg:.2f}×{bound}", jx / cf >= 1.0))
        if cf and cg and torch:
            bt = min(torch)
            bound = f"; best torch / GEMM floor = {bt / gemm:.2f}×" if gemm else ""
            rows.append((f"gradient ≥ 2× faster than torch ({key})",
                         f"CostFunction {bt / cf:.2f}×, cost_gradient {bt / cg:.2f}×{bound}", bt / cf >= 2.0))
    for size in ("medium", "large"):
        mem = results.get("memory", {}).get(f"grad/{size}/zlnotes")
        if mem and "tracemalloc_peak_bytes" in mem and size in jac:
            frac = mem["tracemalloc_peak_bytes"] / jac[size]["bytes"]
            rows.append((f"cost_gradient never forms D ({size})", f"peak {frac:.4f}× the size of D", frac < 0.1))
    return rows


def markdown(results: dict) -> str:
    v = results["versions"]
    mach = results["machine"]
    lines = ["# Benchmark results", ""]
    c = results.get("contention")
    other = (f"other processes used {c['other_cpu_s']:,.0f} CPU-seconds during the {c['wall_s'] / 60:.0f}-minute run, "
             f"{c['other_cores']:.2f} core on average" if c else "other processes' CPU time not recorded (older run)")
    status = (f"**provisional**: {other} (> 0.1) on a shared {mach.get('cpus')}-core machine"
              if results.get("provisional") else other)
    lines += [
        f"- {results['date']}; {status}; `os.getloadavg()` (which counts the benchmark itself) before "
        f"{results['load_before']}, after {results['load_after']}, at most {results['load_max_1min']:.2f}.",
        f"- Machine: {mach.get('cpu', '?')}, {mach.get('cpus')} cores, {mach.get('mem_total_gib', '?')} GiB; "
        f"{mach.get('platform', '')}; numpy BLAS: {mach.get('numpy_blas', '?')}.",
        f"- Threads for BLAS, torch and XLA: {results['threads']}. Activation: {results['activation']} "
        "(and ReLU for the gradient). float64 everywhere (JAX with x64 enabled).",
        "- Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".",
    ]
    ntv = results.get("neural_tangents", {}).get("versions")
    if ntv:
        lines.append("- neural-tangents process: " + ", ".join(f"{k} {val}" for k, val in ntv.items()) + ".")
    lines += [
        f"- Times are medians over {results['repeat']['default']} rounds ({results['repeat']['large']} at the large size) "
        "after a warm-up call; in each round every method of a table runs once in turn"
        + (", a method faster than 20 ms as a block of consecutive calls (time per call = block time / calls)"
           if results.get("block_seconds") else "")
        + ". Every ratio is between measurements made in one process, in the same rounds.",
        f"- Memory: {results['memory_method']}. MiB; \"×D\" is relative to the size of D.",
        "",
    ]

    if "jacobian" in results:
        lines += ["## The Jacobian D", ""]
        for size, r in results["jacobian"].items():
            m = r["methods"]
            fill, af, zl = _t(m.get("fill floor")), _t(m.get("alloc+fill")), _t(m.get("zlnotes"))
            lines += [f"**{_size_label(results, size)}** — D is {r['shape'][0]} × {r['shape'][1]} "
                      f"({r['bytes'] / MIB:,.0f} MiB)", "",
                      "| method | median ms | × fill floor | × alloc+fill | time / zlnotes | peak memory MiB |",
                      "|---|---:|---:|---:|---:|---:|"]
            for name in ("fill floor", "alloc+fill", "zlnotes", "jax", "torch.func"):
                e = m.get(name)
                if e is None:
                    continue
                t = _t(e)
                lines.append(f"| {name} | {_ms(e)} | {_ratio(t, fill)} | {_ratio(t, af)} | {_ratio(t, zl)} | "
                             f"{_mem(results, f'jacobian/{size}/{name}', r['bytes'])} |")
            if r.get("skipped"):
                lines.append(f"| torch.func, jax | {r['skipped']} | | | | |")
            lines.append("")

    if "ntk" in results:
        lines += ["## The NTK D Dᵀ", "",
                  "The Gram floor is Σ_ℓ G_ℓ G_ℓᵀ over the hidden layers (BLAS syrk, "
                  "N²Q² M_ℓ multiply-adds each) plus writing the N·Q × N·Q result, timed in the same process.", ""]
        nt = results.get("neural_tangents", {}).get("ntk", {})
        for size, r in results["ntk"].items():
            m = r["methods"]
            floor, zl = _t(m.get("gram floor")), _t(m.get("zlnotes"))
            lines += [f"**{_size_label(results, size)}** — D Dᵀ is {r['shape'][0]} × {r['shape'][1]}, K = {r['K']:,}, "
                      f"Gram floor {r['gram_flops']:.2e} multiply-adds", "",
                      "| process | method | median ms | × Gram floor | time / zlnotes | peak memory MiB |",
                      "|---|---|---:|---:|---:|---:|"]
            for name in ("gram floor", "zlnotes", "D @ D.T"):
                if name in m:
                    t = _t(m[name])
                    lines.append(f"| main | {name} | {_ms(m[name])} | {_ratio(t, floor)} | {_ratio(t, zl)} | "
                                 f"{_mem(results, f'ntk/{size}/{name}')} |")
            if size in nt:
                mn = nt[size]["methods"]
                nfloor, nzl = _t(mn.get("gram floor")), _t(mn.get("zlnotes"))
                for name, e in mn.items():
                    t = _t(e)
                    lines.append(f"| neural-tangents | {name} | {_ms(e)} | {_ratio(t, nfloor)} | {_ratio(t, nzl)} | "
                                 f"{_mem(results, f'ntk/{size}/{name}')} |")
                for name, why in nt[size].get("skipped", {}).items():
                    lines.append(f"| neural-tangents | {name} | could not run: {why} | — | — | — |")
            lines.append("")
        if "error" in results.get("neural_tangents", {}):
            lines += [f"neural-tangents: {results['neural_tangents']['error']}", ""]

    if "rank" in results:
        lines += ["## The rank of D", ""]
        for size, r in results["rank"].items():
            m = r["methods"]
            fill, zl = _t(m.get("fill floor")), _t(m.get("zlnotes"))
            lines += [f"**{_size_label(results, size)}** — rank {r['rank zlnotes']} (zlnotes, Gram route) and "
                      f"{r['rank matrix_rank']} (`matrix_rank`, SVD)", "",
                      "| method | median ms | × fill floor | time / zlnotes |", "|---|---:|---:|---:|"]
            for name, e in m.items():
                t = _t(e)
                lines.append(f"| {name} | {_ms(e)} | {_ratio(t, fill)} | {_ratio(t, zl)} |")
            lines.append("")

    if "grad" in results:
        lines += ["## The gradient ∇_Z C", "",
                  "`CostFunction` is how `gradient_descent` and `stationary_point` evaluate the gradient: data "
                  "validated and buffers allocated once, then reused at every call. `cost_gradient` is one call "
                  "on a network (it builds a `CostFunction`, so it pays the allocations each time). The floors are "
                  "timed in the same rounds: the GEMM floor is the matrix products of one forward and one backward "
                  "pass into preallocated arrays; the activation floor is σ on the pre-activations (`np.tanh`, "
                  "or `np.maximum` for ReLU).", "",
                  "| size / activation | CostFunction ms | cost_gradient ms | GEMM floor ms | activation floor ms | "
                  "jax ms | torch autograd ms | torch func.grad ms | jax / CostFunction | best torch / CostFunction |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for key, g in results["grad"].items():
            m = g["methods"]
            cf = _t(m.get("zlnotes CostFunction"))
            torch = [t for k, e in m.items() if k.startswith("torch") and (t := _t(e))]
            lines.append(f"| {key} | {_ms(m.get('zlnotes CostFunction'), 2)} | {_ms(m.get('zlnotes cost_gradient'), 2)} | "
                         f"{_ms(m.get('GEMM floor'), 2)} | {_ms(m.get('activation floor'), 2)} | {_ms(m.get('jax'), 2)} | "
                         f"{_ms(m.get('torch autograd'), 2)} | {_ms(m.get('torch func.grad'), 2)} | "
                         f"{_ratio(_t(m.get('jax')), cf)} | {_ratio(min(torch) if torch else None, cf)} |")
        lines.append("")

    rows = targets(results)
    if rows:
        lines += ["## Targets", "", "| target | measured | met |", "|---|---|---|"]
        for name, measured, met in rows:
            lines.append(f"| {name} | {measured} | {'yes' if met else ('—' if met is None else '**no**')} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    path = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "results" / "results.json")
    print(markdown(json.loads(path.read_text())))
