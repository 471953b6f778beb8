"""Records of finished points: ``results.jsonl``, its JSON encoding and reading it back."""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
import warnings
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

RESULTS_FILE = "results.jsonl"


CHECKSUM_FIELD = "checksum"
"""The field of a record that holds :func:`_checksum` of the rest of it."""


NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
"""How non-finite result floats are spelled in ``results.jsonl``."""


class TornLineWarning(UserWarning):
    """``results.jsonl`` ends with an incomplete line (a write cut short); :func:`load_results`
    ignored it."""


class RepairWarning(UserWarning):
    """:func:`zlnotes.sweep.run_sweep` repaired ``results.jsonl`` on resume: it ended with an
    incomplete line (a write cut short by a crash), which was truncated; that point is rerun.

    The library never prints: this is a :func:`warnings.warn`, which a caller can turn into
    an error (``warnings.simplefilter("error", RepairWarning)``), silence, or show as it
    likes (the ``zlnotes sweep`` command prints it as one ``warning:`` line on stderr).
    """


def _encode(value: Any, where: str) -> Any:
    """A JSON-ready copy of a result: non-finite floats spelled as strings, numpy unwrapped."""
    if value is None or isinstance(value, (bool, str)):
        if isinstance(value, str) and value in NONFINITE:
            raise ValueError(f"{where} is the string {value!r}, which results.jsonl reserves for a non-finite float")
        return value
    if isinstance(value, np.ndarray):
        return _encode(value.tolist(), where)
    if isinstance(value, np.generic):
        return _encode(value.item(), where)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        x = float(value)
        return x if math.isfinite(x) else ("nan" if math.isnan(x) else ("inf" if x > 0 else "-inf"))
    if isinstance(value, (list, tuple)):
        return [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{where} has a non-string key {k!r}")
            out[k] = _encode(v, f"{where}[{k!r}]")
        return out
    raise ValueError(f"{where} is a {type(value).__name__}, which JSON cannot store: {value!r}")


def _decode(value: Any) -> Any:
    """Inverse of :func:`_encode` on the parsed JSON: the strings of NONFINITE become floats."""
    if isinstance(value, str):
        return NONFINITE.get(value, value)
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    return value


def _checksum(record: Mapping[str, Any]) -> str:
    """``"sha256:<hex>"`` of the canonical JSON of `record` without its checksum field.

    Canonical: keys sorted, no spaces, ASCII, floats by ``repr``. Parsing a line and
    dumping the result canonically gives the same text as dumping the record that was
    written (JSON numbers and strings round-trip exactly), so the checksum can be
    verified from the parsed line.
    """
    body = {k: v for k, v in record.items() if k != CHECKSUM_FIELD}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return "sha256:" + hashlib.sha256(text.encode("ascii")).hexdigest()


def _with_checksum(record: dict[str, Any]) -> bytes:
    """The line of `record` (without a checksum) with its checksum as the last field."""
    record = {k: v for k, v in record.items() if k != CHECKSUM_FIELD}
    record[CHECKSUM_FIELD] = _checksum(record)
    return (json.dumps(record, allow_nan=False) + "\n").encode("ascii")


def _record_line(key: str, params: dict[str, Any], outcome: dict[str, Any]) -> bytes:
    record = {
        "key": key,
        "params": params,
        "status": outcome["status"],
        "result": outcome["result"],
        "error": outcome["error"],
        "traceback": outcome["traceback"],
        "zlnotes_version": outcome["zlnotes_version"],
        "commit": outcome["commit"],
        "host": outcome["host"],
        "finished_at": _utc_now(),
        "elapsed_s": outcome["elapsed_s"],
    }
    return _with_checksum(record)


def _results_path(path_or_dir: str | os.PathLike[str]) -> Path:
    path = Path(path_or_dir)
    return path / RESULTS_FILE if path.is_dir() else path


def _parse(data: bytes, path: Path) -> tuple[list[dict[str, Any]], int]:
    """Records of the complete lines of `data`, and the length of those lines in bytes.

    A final segment without a newline is a torn write and is not parsed. A complete line
    that is not a record, a record whose checksum does not match, or a key seen twice,
    means the file was not written by a sweep alone: ``ValueError``. Records written
    before records carried a checksum are read if no record of the file has one (a
    sweep adds them when it resumes such a file); a file mixing the two is refused.
    """
    good = data.rfind(b"\n") + 1
    records: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    checked = unchecked = 0  # the first line with and without a checksum
    for number, line in enumerate(data[:good].splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{path}, line {number} is not valid JSON ({exc}); the file is corrupt") from None
        if (
            not isinstance(record, dict)
            or not isinstance(record.get("key"), str)
            or record.get("status") not in ("ok", "error")
        ):
            raise ValueError(f"{path}, line {number} is not a sweep record (needs 'key' and 'status')")
        if CHECKSUM_FIELD in record:
            if record[CHECKSUM_FIELD] != _checksum(record):
                raise ValueError(
                    f"{path}, line {number}: the record does not match its checksum (it was changed after it "
                    "was written); the file is corrupt"
                )
            checked = checked or number
        else:
            unchecked = unchecked or number
        if checked and unchecked:
            raise ValueError(
                f"{path}: line {unchecked} has no checksum but line {checked} has one (a sweep writes all "
                "its records with one); the file is corrupt"
            )
        if record["key"] in seen:
            raise ValueError(f"{path}: key {record['key']!r} appears twice (lines {seen[record['key']]} and {number})")
        seen[record["key"]] = number
        records.append(record)
    return records, good


def load_results(path_or_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read the records of a sweep, in the order they finished.

    Parameters
    ----------
    path_or_dir : path
        A sweep's output folder, or its ``results.jsonl``.

    Returns
    -------
    list of dict
        One record per finished point (see the module docstring for its fields), with
        ``"nan"``, ``"inf"`` and ``"-inf"`` in results turned back into floats. Error
        records (``record["status"] == "error"``) are included.

    Warns
    -----
    TornLineWarning
        If the file ends with an incomplete line (a write cut short by a crash); that
        line is ignored, and the next run of the sweep recomputes its point.

    Raises
    ------
    ValueError
        If a complete line is not a record, a record does not match its checksum, or a
        key appears twice.
    FileNotFoundError
        If there is no such file.
    """
    path = _results_path(path_or_dir)
    data = path.read_bytes()
    records, good = _parse(data, path)
    if good < len(data):
        warnings.warn(
            f"{path} ends with an incomplete line ({len(data) - good} bytes, a write cut short); ignored it",
            TornLineWarning,
            stacklevel=2,
        )
    for record in records:
        record["result"] = _decode(record.get("result"))
    return records


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")

