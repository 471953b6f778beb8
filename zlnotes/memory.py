"""The memory budget: sizes are checked before anything large is allocated.

Every zlnotes function whose memory grows with its arguments (a network's parameters, a
forward pass over ``N`` samples, the Jacobian ``D`` of ``N·Q × K`` numbers, the NTK of
``(N·Q)²``, a face-splitting product, a projector, a data set) first works out how many bytes
its largest arrays take, and refuses a request above the budget with a :class:`ValueError`
that names the argument, states the size in GiB and the budget, and says how to raise it.
The refusal comes before numpy tries the allocation, so a request that cannot fit is never a
:class:`MemoryError` from deep inside numpy, nor a machine driven into swap.

The budget rule
---------------
Unless set with :func:`set_memory_budget`, the budget is the smaller of

- half of the machine's physical memory (``os.sysconf('SC_PHYS_PAGES') ·
  os.sysconf('SC_PAGE_SIZE')``; 8 GiB where the system does not report it), and
- half of the address space the process has left under its limit ``RLIMIT_AS``
  (``ulimit -v``), if one is set: the limit minus the current size of the process
  (``/proc/self/statm`` where available).

It is a bound on one request (the arrays one call allocates), not on the whole process.

Examples
--------
>>> import zlnotes as zl
>>> zl.set_memory_budget(2**30)  # 1 GiB
>>> zl.memory_budget()
1073741824
>>> zl.set_memory_budget(None)  # back to the default rule
"""

from __future__ import annotations

import os

from ._validation import nonnegative_int

__all__ = ["memory_budget", "set_memory_budget", "require_memory", "FLOAT_BYTES", "LAYER_OVERHEAD_BYTES"]

FLOAT_BYTES = 8
"""Bytes of one float64."""

LAYER_OVERHEAD_BYTES = 2048
"""Bytes counted per layer of a network besides its numbers: the numpy array objects of its
weights and biases and their copies (a network of 10⁷ tiny layers takes gigabytes)."""

PHYSICAL_FRACTION = 0.5
"""Fraction of the physical memory one request may take by default."""

ADDRESS_SPACE_FRACTION = 0.5
"""Fraction of the address space left under ``RLIMIT_AS`` one request may take by default."""

FALLBACK_PHYSICAL_BYTES = 8 << 30
"""Physical memory assumed where the system does not report it (8 GiB)."""

_SMALL = 1 << 20
"""Requests up to 1 MiB are never refused by the default rule (and not measured)."""

_budget: int | None = None


def _physical_bytes() -> int:
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows) or no such name
        return FALLBACK_PHYSICAL_BYTES
    return int(pages) * int(size) if pages > 0 and size > 0 else FALLBACK_PHYSICAL_BYTES


_PHYSICAL = _physical_bytes()


def _address_space_left() -> int | None:
    """Bytes left under ``RLIMIT_AS``, or ``None`` without a limit."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return None
    soft = resource.getrlimit(resource.RLIMIT_AS)[0]
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return None
    used = 0
    try:
        with open("/proc/self/statm") as f:
            used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    return max(0, int(soft) - used)


def _default_budget() -> tuple[int, str]:
    physical = int(PHYSICAL_FRACTION * _PHYSICAL)
    left = _address_space_left()
    if left is not None and int(ADDRESS_SPACE_FRACTION * left) < physical:
        return int(ADDRESS_SPACE_FRACTION * left), "half the address space left under the process's limit RLIMIT_AS"
    return physical, "half the physical memory"


def memory_budget() -> int:
    """The largest number of bytes one zlnotes call may allocate (see the module docstring)."""
    return _budget if _budget is not None else _default_budget()[0]


def set_memory_budget(nbytes: int | None) -> None:
    """Set the memory budget to ``nbytes`` bytes, or back to the default rule with ``None``.

    Parameters
    ----------
    nbytes
        An integer ``≥ 0``, or ``None``.

    Raises
    ------
    TypeError
        If ``nbytes`` is neither an integer nor ``None``.
    ValueError
        If ``nbytes < 0``.
    """
    global _budget
    _budget = None if nbytes is None else nonnegative_int("nbytes", nbytes)


def _gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.3g} GiB"


def require_memory(argument: str, what: str, nbytes: int) -> None:
    """Refuse a request of ``nbytes`` above the budget: ``ValueError`` naming ``argument``.

    ``what`` says what would be allocated, e.g. ``"the Jacobian D (N·Q × K = 60000 × 108801)"``.
    """
    if _budget is None:
        if nbytes <= _SMALL:
            return
        budget, rule = _default_budget()
    else:
        budget, rule = _budget, "set with zlnotes.set_memory_budget"
    if nbytes > budget:
        raise ValueError(
            f"{argument}: {what} needs {_gib(nbytes)}, above the memory budget of {_gib(budget)} ({rule}); "
            "use smaller arguments, or raise the budget with zlnotes.set_memory_budget(nbytes)"
        )
