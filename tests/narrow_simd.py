"""Print the value of NPY_DISABLE_CPU_FEATURES that turns off numpy's widest SIMD loops here.

`make test` runs nbval and the papermill runs a second time with it, against the same
committed outputs: the book must not depend on the last bits that numpy's SIMD loops for
exp, log, power, tanh and friends change between CPUs (an AVX-512 machine against an AVX2
one). On an x86-64 machine with AVX-512 this is the AVX-512 group (X86_V4 and above); with
AVX2 only, X86_V3 and above, which leaves numpy at its SSE4.2 baseline. Elsewhere, the widest
dispatched feature found and those after it. Prints nothing if numpy dispatches no feature
above its baseline here (then there is nothing to narrow).

OpenBLAS's own kernel choice (OPENBLAS_CORETYPE) is left alone on purpose: some machines need
it set, and the CI must not override it.
"""

from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

found = [name for name in __cpu_dispatch__ if __cpu_features__.get(name)]
if not found:
    raise SystemExit(0)
if "X86_V4" in found:
    start = __cpu_dispatch__.index("X86_V4")
elif "X86_V3" in found:
    start = __cpu_dispatch__.index("X86_V3")
else:
    start = __cpu_dispatch__.index(found[-1])
print(" ".join(__cpu_dispatch__[start:]))
