#!/usr/bin/env python
"""Benchmark the zlnotes kernels against torch.func, JAX and neural-tangents.

Run it with ``make bench`` (which builds the two benchmark environments on first use), or
by hand::

    benchmarks/.venv/bin/python benchmarks/bench.py --nt-python benchmarks/.venv-nt/bin/python

What is measured (``benchmarks/README.md`` has the reasoning):

- every timing is the median of repeated calls after one warm-up call (which also compiles
  the JAX functions), measured in ONE process together with the baselines it is divided by:
  the fill floor (``D0.fill(1.0)`` on an existing array of D's shape), allocating and filling
  a fresh array (``np.full``), ``D @ D.T`` and ``np.linalg.matrix_rank(D)``;
- neural-tangents needs an older JAX than the newest one (see the README), so it runs in a
  second process from its own environment, which measures ``zl.ntk`` and the Gram floor
  again, so that its ratios, too, come from one process;
- peak memory is the growth of the peak resident set size (``VmHWM`` in ``/proc/self/status``,
  reset through ``/proc/self/clear_refs``) during one call, in a fresh subprocess per
  (method, size), after the set-up and, for JAX, after compilation; for the zlnotes kernels
  the peak of numpy's traced allocations (``tracemalloc``) is recorded as well;
- contention: the CPU time the rest of the machine used during the run (busy time in
  ``/proc/stat`` minus this process's and its children's ``getrusage``) is recorded; a table
  measured while other processes used more than 0.1 core on average is marked provisional
  (the machine has 2 cores and is shared). ``os.getloadavg()`` is recorded too; it counts
  the benchmark itself, so it is not the criterion.

Every peer's result is compared with zlnotes' before it is timed (the run stops if they differ).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

SIZES = {
    # name: (N, M, hidden widths, Q)
    "medium": (256, 16, (64, 64, 64), 4),
    "ntk": (256, 32, (128, 128, 128), 8),
    "large": (512, 32, (256, 256, 256), 8),
}
ACTIVATION = "tanh"
# which sections run at which size
PLAN = {
    "jacobian": ("medium", "large"),
    "ntk": ("medium", "ntk", "large"),
    "rank": ("medium",),
    "grad": ("medium", "large"),
}
OTHER_CPU_LIMIT = 0.1  # a table is provisional if other processes used more than 0.1 core on average
AGREE = 1e-10  # relative max difference allowed between a peer's result and zlnotes'


# --------------------------------------------------------------------------- helpers


def set_threads(n: int) -> None:
    """Limit every library to ``n`` threads; must run before numpy, torch or jax are imported."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    flags = os.environ.get("XLA_FLAGS", "")
    if n == 1 and "multi_thread_eigen" not in flags:
        os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("JAX_PLATFORMS", "cpu")


def rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)


def mem_available_bytes() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def cpu_clock() -> dict:
    """CPU seconds spent by the whole machine (busy time in ``/proc/stat``) and by this process
    and its finished children (``getrusage``), with the wall-clock time."""
    import resource

    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    machine_busy = (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")
    own = sum(getattr(resource.getrusage(who), k) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
              for k in ("ru_utime", "ru_stime"))
    return {"wall": time.time(), "machine_busy": machine_busy, "own": own}


def other_cpu(start: dict, end: dict) -> dict:
    """How much CPU the rest of the machine used while the benchmark ran, in cores."""
    wall = end["wall"] - start["wall"]
    other = (end["machine_busy"] - start["machine_busy"]) - (end["own"] - start["own"])
    return {"wall_s": round(wall, 1), "other_cpu_s": round(max(other, 0.0), 1),
            "other_cores": round(max(other, 0.0) / wall, 3) if wall > 0 else 0.0}


def problem(size: str, activation: str = ACTIVATION):
    import numpy as np

    import zlnotes as zl

    N, M, hidden, Q = SIZES[size]
    arch = zl.Architecture(M, hidden, Q, activation)
    net = zl.Network.init(arch, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    X = rng.standard_normal((N, M))
    Y = rng.standard_normal((N, Q))
    return net, X, Y


def _median(times: list[float]) -> float:
    t = sorted(times)
    n = len(t)
    return t[n // 2] if n % 2 else 0.5 * (t[n // 2 - 1] + t[n // 2])


BLOCK_SECONDS = 0.02
"""A method faster than this is timed in blocks of consecutive calls lasting about this long
(as :mod:`timeit` does); its time per call is the block's time divided by the block's length."""


def time_group(methods: dict, repeat: int, max_seconds: float = 300.0) -> dict:
    """Time several methods round-robin, in one process.

    One warm-up call each (JAX compiles then; it also gives the block length: a method that
    took less than ``BLOCK_SECONDS`` runs in blocks of ``n`` consecutive calls lasting about
    that long, which is how a gradient-descent loop calls it), then ``repeat`` rounds in which
    every method runs one block, so that a change of machine load between methods hits them
    all alike. ``methods`` maps a name to ``fn`` or ``(fn, block, max_runs)``; ``block`` waits
    for an asynchronous result (JAX), ``max_runs`` caps the rounds of an expensive method.
    Returns ``{name: {"median_s", "min_s", "runs", "calls_per_run"}}`` with times per call;
    rounds stop early past ``max_seconds``.
    """
    spec = {}
    for name, m in methods.items():
        fn, block, cap = m if isinstance(m, tuple) else (m, None, None)
        spec[name] = [fn, block or (lambda r: r), cap or repeat, 1]
    for name, entry in spec.items():  # warm-up
        fn, block, cap, _ = entry
        if cap > 1:  # a method timed once (D @ D.T at the large size) is plain numpy: no warm-up
            block(fn())
            t0 = time.perf_counter()
            block(fn())
            once = time.perf_counter() - t0
            entry[3] = max(1, min(1000, int(BLOCK_SECONDS / max(once, 1e-7))))
    times: dict[str, list[float]] = {name: [] for name in spec}
    start = time.perf_counter()
    for r in range(repeat):
        for name, (fn, block, cap, n) in spec.items():
            if r >= cap:
                continue
            gc.collect()
            t0 = time.perf_counter()
            for _ in range(n):
                out = block(fn())
            times[name].append((time.perf_counter() - t0) / n)
            del out
        if time.perf_counter() - start > max_seconds:
            break
    res = {name: {"median_s": _median(t), "min_s": min(t), "runs": len(t), "calls_per_run": spec[name][3]}
           for name, t in times.items()}
    print("    " + ", ".join(f"{k} {v['median_s'] * 1e3:.1f} ms" for k, v in res.items()), file=sys.stderr, flush=True)
    return res


def rel_diff(a, b) -> float:
    import numpy as np

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-300))


def check(name: str, value, reference) -> float:
    err = rel_diff(value, reference)
    if not err < AGREE:
        raise SystemExit(f"{name} disagrees with zlnotes: relative max difference {err:.3g}")
    return err


# --------------------------------------------------------------------------- peers


def jax_activation(name: str):
    import jax

    return {"tanh": jax.numpy.tanh, "relu": jax.nn.relu}[name]


def torch_activation(name: str):
    import torch

    return {"tanh": torch.tanh, "relu": torch.relu}[name]


def jax_setup():
    import jax

    jax.config.update("jax_enable_x64", True)
    return jax


def jax_params(net, transposed: bool = False):
    jax_setup()  # x64 before any array is made
    import jax.numpy as jnp

    if transposed:
        return [(jnp.asarray(W.T), jnp.asarray(b)) for W, b in zip(net.weights, net.biases)]
    return [(jnp.asarray(W), jnp.asarray(b)) for W, b in zip(net.weights, net.biases)]


def jax_jacobian_fn(net):
    """``D`` (N·Q, K) by ``jit(vmap(jacrev(f)))`` with per-sample ``f``, blocks concatenated in
    zlnotes' column order inside the jitted function."""
    jax = jax_setup()
    import jax.numpy as jnp

    act = jax_activation(net.arch.activation)

    def f(params, x):  # one sample x (M,) -> (Q,)
        for W, b in params[:-1]:
            x = act(W @ x + b)
        W, b = params[-1]
        return W @ x + b

    per_sample = jax.vmap(jax.jacrev(f), in_axes=(None, 0))

    @jax.jit
    def jac(params, X):
        blocks = per_sample(params, X)  # [(N, Q, out, in), (N, Q, out)] per layer
        N, Q = X.shape[0], blocks[-1][1].shape[1]
        flat = [p.reshape(N, Q, -1) for W, b in blocks for p in (W, b)]
        return jnp.concatenate(flat, axis=2).reshape(N * Q, -1)

    return jac


def jax_grad_fn(net):
    jax = jax_setup()
    import jax.numpy as jnp

    act = jax_activation(net.arch.activation)

    def loss(params, X, Y):
        A = X
        for Wt, b in params[:-1]:
            A = act(A @ Wt + b)
        Wt, b = params[-1]
        R = A @ Wt + b - Y
        return jnp.vdot(R, R) / (2 * X.shape[0])

    g = jax.grad(loss)

    @jax.jit
    def grad(params, X, Y):
        gp = g(params, X, Y)
        return jnp.concatenate([p.ravel() for Wt, b in gp for p in (Wt.T, b)])

    return grad


def torch_setup(threads: int):
    import torch

    torch.set_num_threads(threads)
    return torch


def torch_params(net, threads: int):
    torch = torch_setup(threads)
    return {f"{k}{i}": torch.tensor(v) for i, (W, b) in enumerate(zip(net.weights, net.biases)) for k, v in (("W", W), ("b", b))}


def torch_jacobian_fn(net, threads: int):
    """``D`` by ``torch.func``: ``vmap(jacrev(f))`` over samples, then the blocks concatenated."""
    torch = torch_setup(threads)
    from torch.func import jacrev, vmap

    act = torch_activation(net.arch.activation)
    n_layers = net.arch.depth + 1
    names = [f"{k}{i}" for i in range(n_layers) for k in ("W", "b")]

    def f(params, x):
        for i in range(n_layers - 1):
            x = act(params[f"W{i}"] @ x + params[f"b{i}"])
        return params[f"W{n_layers - 1}"] @ x + params[f"b{n_layers - 1}"]

    per_sample = vmap(jacrev(f), in_dims=(None, 0))

    def jac(params, X):
        with torch.no_grad():
            blocks = per_sample(params, X)
            N, Q = X.shape[0], blocks["b0"].shape[1]
            return torch.cat([blocks[n].reshape(N, Q, -1) for n in names], dim=2).reshape(N * Q, -1)

    return jac


def torch_grad_fns(net, threads: int):
    """``∇_Z C`` by autograd (``backward``) and by ``torch.func.grad``, flattened."""
    torch = torch_setup(threads)
    from torch.func import grad as fgrad

    act = torch_activation(net.arch.activation)
    n_layers = net.arch.depth + 1
    names = [f"{k}{i}" for i in range(n_layers) for k in ("W", "b")]

    def loss(params, X, Y):
        A = X
        for i in range(n_layers - 1):
            A = act(A @ params[f"W{i}"].T + params[f"b{i}"])
        R = A @ params[f"W{n_layers - 1}"].T + params[f"b{n_layers - 1}"] - Y
        return (R * R).sum() / (2 * X.shape[0])

    def autograd(params, X, Y):
        leaves = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        loss(leaves, X, Y).backward()
        return torch.cat([leaves[n].grad.reshape(-1) for n in names])

    g = fgrad(loss)

    def functional(params, X, Y):
        gp = g(params, X, Y)
        return torch.cat([gp[n].reshape(-1) for n in names])

    return {"autograd": autograd, "func.grad": functional}


def nt_ntk_fns(net):
    """neural-tangents' empirical NTK, implementations 1-3, weights stored transposed."""
    jax = jax_setup()
    import jax.numpy as jnp
    import neural_tangents as nt

    act = jax_activation(net.arch.activation)

    def apply_fn(params, x):
        for Wt, b in params[:-1]:
            x = act(x @ Wt + b)
        Wt, b = params[-1]
        return x @ Wt + b

    impls = {
        "nt jacobian contraction": nt.NtkImplementation.JACOBIAN_CONTRACTION,
        "nt ntk-vector products": nt.NtkImplementation.NTK_VECTOR_PRODUCTS,
        "nt structured derivatives": nt.NtkImplementation.STRUCTURED_DERIVATIVES,
    }
    return {name: jax.jit(nt.empirical_ntk_fn(apply_fn, trace_axes=(), vmap_axes=0, implementation=impl))
            for name, impl in impls.items()}


def gram_floor_parts(net, X):
    """The hidden layers' factors ``G_ℓ`` (N·Q × M_ℓ): the floor of the Gram identity is
    ``Σ_ℓ G_ℓ G_ℓᵀ`` (numpy calls BLAS syrk for ``a @ a.T``) plus writing the ``N·Q × N·Q`` result."""
    G = [g.reshape(-1, g.shape[-1]).copy() for _, g in __import__("zlnotes").backprop_factors(net, X)[:-1]]
    flops = sum(g.shape[0] ** 2 * g.shape[1] for g in G)  # syrk: n² k multiply-adds
    return G, flops


# --------------------------------------------------------------------------- sections


def run_jacobian(size: str, repeat: int, threads: int, peers: bool) -> dict:
    import numpy as np

    import zlnotes as zl

    net, X, _ = problem(size)
    N, Q, K = X.shape[0], net.arch.output_dim, net.arch.num_params
    out: dict = {"shape": [N * Q, K], "bytes": N * Q * K * 8, "methods": {}, "agree": {}}
    methods = {}
    if peers:
        # the peers are checked against zlnotes first, then every D is dropped before timing:
        # at the large size D is 4.4 GiB and a peer needs about twice that while it runs
        need = 4 * out["bytes"]
        if mem_available_bytes() > need:
            D = zl.jacobian(net, X)
            jax = jax_setup()
            jac = jax_jacobian_fn(net)
            p, Xj = jax_params(net), jax.numpy.asarray(X)
            out["agree"]["jax"] = check("jax jacobian", np.asarray(jac(p, Xj)), D)
            methods["jax"] = (lambda: jac(p, Xj), jax.block_until_ready, None)
            torch = torch_setup(threads)
            tjac = torch_jacobian_fn(net, threads)
            tp, Xt = torch_params(net, threads), torch.tensor(X)
            out["agree"]["torch.func"] = check("torch jacobian", tjac(tp, Xt).numpy(), D)
            methods["torch.func"] = lambda: tjac(tp, Xt)
            del D
            gc.collect()
        else:
            out["skipped"] = f"peers skipped: they need about {need / 2**30:.0f} GiB free"
    D0 = np.empty((N * Q, K))
    D0.fill(0.0)
    methods = {
        "fill floor": lambda: D0.fill(1.0),
        "alloc+fill": lambda: np.full((N * Q, K), 1.0),
        "zlnotes": lambda: zl.jacobian(net, X),
        **methods,
    }
    out["methods"] = time_group(methods, repeat)
    return out


def run_ntk(size: str, repeat: int, threads: int, peers: bool, nt: bool) -> dict:
    import numpy as np

    import zlnotes as zl

    net, X, _ = problem(size)
    N, Q, K = X.shape[0], net.arch.output_dim, net.arch.num_params
    G, flops = gram_floor_parts(net, X)
    out: dict = {"shape": [N * Q, N * Q], "K": K, "gram_flops": flops, "methods": {}, "agree": {}, "skipped": {}}
    ref = zl.ntk(net, X)
    Kbuf = np.empty((N * Q, N * Q))
    Kbuf.fill(0.0)

    def floor():
        for g in G:
            g @ g.T
        Kbuf.fill(1.0)

    methods = {"gram floor": floor, "zlnotes": lambda: zl.ntk(net, X)}
    if peers:
        D = zl.jacobian(net, X)
        out["agree"]["D @ D.T"] = check("D @ D.T", D @ D.T, ref)
        methods["D @ D.T"] = (lambda: D @ D.T, None, 1 if size == "large" else None)
    if nt:
        import jax

        p, Xj = jax_params(net, transposed=True), jax.numpy.asarray(X)
        for name, fn in nt_ntk_fns(net).items():
            try:
                k = np.asarray(fn(Xj, None, p)).transpose(0, 2, 1, 3).reshape(N * Q, N * Q)
                out["agree"][name] = check(name, k, ref)
                del k
                methods[name] = ((lambda fn=fn: fn(Xj, None, p)), jax.block_until_ready, None)
            except Exception as exc:  # noqa: BLE001 - record why an implementation could not run
                out["skipped"][name] = f"{type(exc).__name__}: {str(exc)[:300]}"
            gc.collect()
    out["methods"] = time_group(methods, repeat)
    return out


def run_rank(size: str, repeat: int) -> dict:
    import numpy as np

    import zlnotes as zl

    net, X, _ = problem(size)
    out: dict = {}
    K = zl.ntk(net, X)
    out["rank zlnotes"] = int(zl.jacobian_rank(net, X))
    out["rank matrix_rank"] = int(np.linalg.matrix_rank(zl.jacobian(net, X)))
    D0 = np.empty((X.shape[0] * net.arch.output_dim, net.arch.num_params))
    D0.fill(0.0)
    out["methods"] = time_group({
        "fill floor": lambda: D0.fill(1.0),
        "zlnotes": lambda: zl.jacobian_rank(net, X),
        "eigvalsh(D D^T)": lambda: np.linalg.eigvalsh(K),
        "matrix_rank(jacobian)": (lambda: np.linalg.matrix_rank(zl.jacobian(net, X)), None, max(3, repeat // 3)),
    }, repeat)
    return out


def run_grad(size: str, repeat: int, threads: int, peers: bool, activation: str) -> dict:
    import numpy as np

    import zlnotes as zl
    from zlnotes.activations import value_into

    net, X, Y = problem(size, activation)
    out: dict = {"activation": activation, "agree": {}}
    f, Z = zl.CostFunction(net.arch, X, Y), net.flat()
    g = np.empty_like(Z)
    ref = zl.cost_gradient(net, X, Y)
    out["agree"]["CostFunction"] = check("CostFunction", f(Z, out=g)[1], ref)
    # floors, in the same rounds: the GEMMs of one forward and one backward pass, into
    # preallocated arrays (what any implementation of these layers multiplies), and the
    # activation evaluated on the pre-activations (np.tanh for tanh)
    pre, post = net.pre_and_post_activations(X)
    W, L, N = net.weights, net.arch.depth, X.shape[0]
    fwd_out = [np.empty((N, w.shape[0])) for w in W]
    grad_out = [np.empty(w.shape) for w in W]
    back_out = [np.empty((N, w.shape[1])) for w in W]
    deltas = [np.empty((N, w.shape[0])) for w in W]
    for d in deltas:
        d.fill(1.0)
    act_out = [np.empty_like(z) for z in pre]

    def gemm_floor() -> None:
        for A, w, o in zip(post, W, fwd_out):
            np.matmul(A, w.T, out=o)
        for ell in range(L, -1, -1):
            np.matmul(deltas[ell].T, post[ell], out=grad_out[ell])
            if ell > 0:
                np.matmul(deltas[ell], W[ell], out=back_out[ell])

    def activation_floor() -> None:
        for z, o in zip(pre, act_out):
            value_into(net.arch.sigma, z, o)

    methods = {
        "zlnotes CostFunction": lambda: f(Z, out=g),
        "zlnotes cost_gradient": lambda: zl.cost_gradient(net, X, Y),
        "GEMM floor": gemm_floor,
        "activation floor": activation_floor,
    }
    if peers:
        jax = jax_setup()
        gj = jax_grad_fn(net)
        p, Xj, Yj = jax_params(net, transposed=True), jax.numpy.asarray(X), jax.numpy.asarray(Y)
        out["agree"]["jax"] = check("jax grad", np.asarray(gj(p, Xj, Yj)), ref)
        methods["jax"] = (lambda: gj(p, Xj, Yj), jax.block_until_ready, None)
        torch = torch_setup(threads)
        tp, Xt, Yt = torch_params(net, threads), torch.tensor(X), torch.tensor(Y)
        for name, fn in torch_grad_fns(net, threads).items():
            key = f"torch {name}"
            out["agree"][key] = check(key, fn(tp, Xt, Yt).numpy(), ref)
            methods[key] = lambda fn=fn: fn(tp, Xt, Yt)
    out["methods"] = time_group(methods, repeat)
    return out


# --------------------------------------------------------------------------- memory


def memory_child(section: str, method: str, size: str, threads: int) -> dict:
    """Peak RSS growth of one call, in this (fresh) process."""
    import tracemalloc

    import numpy as np

    import zlnotes as zl

    net, X, Y = problem(size)
    call = None
    if section == "jacobian":
        if method == "zlnotes":
            call = lambda: zl.jacobian(net, X)  # noqa: E731
        elif method == "alloc+fill":
            N, Q, K = X.shape[0], net.arch.output_dim, net.arch.num_params
            call = lambda: np.full((N * Q, K), 1.0)  # noqa: E731
        elif method == "jax":
            jax = jax_setup()
            p, Xj = jax_params(net), jax.numpy.asarray(X)
            compiled = jax_jacobian_fn(net).lower(p, Xj).compile()
            call = lambda: jax.block_until_ready(compiled(p, Xj))  # noqa: E731
        elif method == "torch.func":
            torch = torch_setup(threads)
            tp, Xt = torch_params(net, threads), torch.tensor(X)
            fn = torch_jacobian_fn(net, threads)
            call = lambda: fn(tp, Xt)  # noqa: E731
    elif section == "ntk":
        if method == "zlnotes":
            call = lambda: zl.ntk(net, X)  # noqa: E731
        elif method.startswith("nt "):
            jax = jax_setup()
            fn = nt_ntk_fns(net)[method]
            p, Xj = jax_params(net, transposed=True), jax.numpy.asarray(X)
            compiled = fn.lower(Xj, None, p).compile()
            call = lambda: jax.block_until_ready(compiled(Xj, None, p))  # noqa: E731
    elif section == "grad" and method == "zlnotes":  # builds a CostFunction: its buffers are counted
        call = lambda: zl.cost_gradient(net, X, Y)  # noqa: E731
    if call is None:
        raise SystemExit(f"no memory measurement for {section}/{method}")
    gc.collect()
    reset_peak()
    base = rss_kib("VmRSS")
    result = call()
    peak = rss_kib("VmHWM")
    res = {"peak_rss_growth_bytes": (peak - base) * 1024}
    del result
    if method == "zlnotes":  # numpy's own allocations, traced
        gc.collect()
        tracemalloc.start()
        result = call()
        res["tracemalloc_peak_bytes"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        res["result_bytes"] = int(result.nbytes)
    return res


def measure_memory(python: str, section: str, method: str, size: str, threads: int) -> dict:
    cmd = [python, str(Path(__file__)), "--child", "memory", "--section", section, "--method", method,
           "--sizes", size, "--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- machine info


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("numpy", "scipy", "zlnotes", "torch", "jax", "jaxlib", "neural-tangents", "tensorflow", "tf2jax"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def machine() -> dict:
    info = {"platform": platform.platform(), "machine": platform.machine(), "cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        info["cpu"] = names[0] if names else "?"
        with open("/proc/meminfo") as f:
            info["mem_total_gib"] = round(int(f.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    try:
        import numpy as np

        cfg = np.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        info["numpy_blas"] = f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
        info["simd"] = cfg.get("SIMD Extensions", {})
    except Exception:  # noqa: BLE001
        pass
    try:
        info["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
        info["git_dirty_kernels"] = bool(subprocess.run(
            ["git", "status", "--porcelain", "zlnotes/jacobian.py", "zlnotes/cost.py", "zlnotes/linalg.py"],
            capture_output=True, text=True, cwd=ROOT).stdout.strip())
    except OSError:
        pass
    return info


# --------------------------------------------------------------------------- main


def child_nt(args) -> dict:
    """The neural-tangents part, run from benchmarks/.venv-nt."""
    out = {"versions": versions(), "load_before": load(), "ntk": {}}
    for size in args.sizes:
        out["ntk"][size] = run_ntk(size, args.repeat_for(size), args.threads, peers=False, nt=True)
        print(f"[nt] ntk {size} done, load {load()}", file=sys.stderr, flush=True)
    out["load_after"] = load()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=lambda s: s.split(","), default=None, help="comma-separated subset of " + ",".join(SIZES))
    ap.add_argument("--sections", type=lambda s: s.split(","), default=list(PLAN), help="comma-separated subset of " + ",".join(PLAN))
    ap.add_argument("--repeat", type=int, default=15, help="timed calls per measurement at the medium/ntk sizes")
    ap.add_argument("--repeat-large", type=int, default=3, help="timed calls per measurement at the large size")
    ap.add_argument("--threads", type=int, default=1, help="threads for BLAS, torch and XLA (default 1: robust on a shared machine)")
    ap.add_argument("--nt-python", default=None, help="python of the neural-tangents environment (benchmarks/.venv-nt/bin/python)")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    ap.add_argument("--out", default=str(HERE / "results"), help="directory for results.json and results.md")
    ap.add_argument("--child", choices=["nt", "memory"], help=argparse.SUPPRESS)
    ap.add_argument("--section", help=argparse.SUPPRESS)
    ap.add_argument("--method", help=argparse.SUPPRESS)
    ap.add_argument("--json", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.repeat_for = lambda size: args.repeat_large if size == "large" else args.repeat
    set_threads(args.threads)

    if args.child == "memory":
        print(json.dumps(memory_child(args.section, args.method, args.sizes[0], args.threads)))
        return
    if args.child == "nt":
        args.sizes = args.sizes or list(PLAN["ntk"])
        Path(args.json).write_text(json.dumps(child_nt(args)))
        return

    sizes = args.sizes or list(SIZES)
    results: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine(),
        "versions": versions(),
        "threads": args.threads,
        "activation": ACTIVATION,
        "sizes": {k: {"N": v[0], "M": v[1], "hidden": list(v[2]), "Q": v[3]} for k, v in SIZES.items()},
        "load_before": load(),
        "cpu_start": cpu_clock(),
        "block_seconds": BLOCK_SECONDS,
        "repeat": {"default": args.repeat, "large": args.repeat_large},
        "memory_method": "peak RSS growth (VmHWM after minus VmRSS before, VmHWM reset via /proc/self/clear_refs) "
                         "of one call in a fresh subprocess; tracemalloc peak of numpy allocations for zlnotes",
    }
    loads = [results["load_before"][0]]

    def note(msg: str) -> None:
        loads.append(load()[0])
        print(f"{msg}  (load {load()})", file=sys.stderr, flush=True)

    if "jacobian" in args.sections:
        results["jacobian"] = {}
        for size in [s for s in PLAN["jacobian"] if s in sizes]:
            results["jacobian"][size] = run_jacobian(size, args.repeat_for(size), args.threads, peers=True)
            note(f"jacobian {size} done")
    if "ntk" in args.sections:
        results["ntk"] = {}
        for size in [s for s in PLAN["ntk"] if s in sizes]:
            results["ntk"][size] = run_ntk(size, args.repeat_for(size), args.threads, peers=True, nt=False)
            note(f"ntk {size} done")
    if "rank" in args.sections:
        results["rank"] = {size: run_rank(size, args.repeat) for size in PLAN["rank"] if size in sizes}
        note("rank done")
    if "grad" in args.sections:
        results["grad"] = {}
        for size in [s for s in PLAN["grad"] if s in sizes]:
            for act in ("tanh", "relu"):
                results["grad"][f"{size}/{act}"] = run_grad(size, args.repeat_for(size) * (4 if size != "large" else 3), args.threads, True, act)
            note(f"grad {size} done")

    nt_sizes = [s for s in PLAN["ntk"] if s in sizes]
    if args.nt_python and "ntk" in args.sections and nt_sizes:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "nt.json"
            cmd = [args.nt_python, str(Path(__file__)), "--child", "nt", "--json", str(path), "--sizes", ",".join(nt_sizes),
                   "--threads", str(args.threads), "--repeat", str(args.repeat), "--repeat-large", str(args.repeat_large)]
            proc = subprocess.run(cmd, cwd=ROOT)
            if proc.returncode == 0:
                results["neural_tangents"] = json.loads(path.read_text())
            else:
                results["neural_tangents"] = {"error": f"the neural-tangents process exited with {proc.returncode}"}
        note("neural-tangents done")

    if not args.no_memory:
        mem: dict = {}
        py = sys.executable
        for size in [s for s in PLAN["jacobian"] if s in sizes and "jacobian" in args.sections]:
            for method in ("alloc+fill", "zlnotes", "jax", "torch.func"):
                mem[f"jacobian/{size}/{method}"] = measure_memory(py, "jacobian", method, size, args.threads)
        for size in [s for s in PLAN["ntk"] if s in sizes and "ntk" in args.sections]:
            mem[f"ntk/{size}/zlnotes"] = measure_memory(py, "ntk", "zlnotes", size, args.threads)
            if args.nt_python and "neural_tangents" in results and "error" not in results["neural_tangents"]:
                for method in ("nt jacobian contraction", "nt structured derivatives"):
                    mem[f"ntk/{size}/{method}"] = measure_memory(args.nt_python, "ntk", method, size, args.threads)
        for size in [s for s in PLAN["grad"] if s in sizes and "grad" in args.sections]:
            mem[f"grad/{size}/zlnotes"] = measure_memory(py, "grad", "zlnotes", size, args.threads)
        results["memory"] = mem
        note("memory done")

    results["load_after"] = load()
    results["load_max_1min"] = max(loads + [results["load_after"][0]])
    results["contention"] = other_cpu(results.pop("cpu_start"), cpu_clock())
    results["provisional"] = results["contention"]["other_cores"] > OTHER_CPU_LIMIT
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    from report import markdown  # benchmarks/report.py

    md = markdown(results)
    (out / "results.md").write_text(md)
    print(md)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
