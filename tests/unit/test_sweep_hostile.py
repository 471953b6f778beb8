"""Sweeps against hostile or changing output folders, hung schedulers and orphaned workers.

Every case that could hang runs in a subprocess with a timeout, or against a server
with a deadline, so no test here can hang the suite.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import sweep_fixtures as fx

from zlnotes.book.cli import main
from zlnotes.sweep import SweepError, load_results, point_key, run_sweep

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "data" / "dichotomy_book"
PROCESS_TIMEOUT = 120
"""Seconds a `zlnotes sweep` subprocess may take in all (a busy machine is slow)."""

CLI = [sys.executable, "-c", "import sys, sweep_fixtures; sys.exit(sweep_fixtures.cli(sys.argv[1:]))"]
"""`zlnotes` with the test experiments registered, as a subprocess command."""


@pytest.fixture(autouse=True)
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    from zlnotes.book import experiments

    monkeypatch.setattr(experiments, "EXPERIMENTS", {**experiments.EXPERIMENTS, **fx.REGISTRY})


def env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", **extra}


def lines_in(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def raw_keys(path: Path) -> Counter[str]:
    return Counter(json.loads(line)["key"] for line in path.read_text().splitlines())


def start_sweep(out: Path, name: str = "slow", *extra: str, gate: Path | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*CLI, "sweep", name, "--preset", "tiny", "--out", str(out), *extra],
        env=env(**({fx.GATE_ENV: str(gate)} if gate else {})), start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def wait_for_lines(process: subprocess.Popen[bytes], results: Path, n: int) -> None:
    deadline = time.monotonic() + PROCESS_TIMEOUT
    while lines_in(results) < n:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"the sweep wrote no {n} points in time"
        time.sleep(0.01)


def finish(process: subprocess.Popen[bytes]) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=PROCESS_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    return process.returncode, out.decode(), err.decode()


# -- planted links and files ------------------------------------------------------------


@pytest.mark.parametrize("name", [".lock", "results.jsonl", "sweep.json"])
def test_a_planted_symlink_is_refused_and_its_target_untouched(tmp_path: Path, name: str) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / name).symlink_to(victim)
    with pytest.raises(ValueError, match=rf"out: {out / name} is a symbolic link; a sweep does not follow links"):
        run_sweep(fx.FAST, "tiny", out, workers=1, progress=False)
    assert victim.read_text() == "precious\n"
    assert sorted(p.name for p in out.iterdir()) == sorted({".lock", name})  # nothing else written
    assert not (out / "results.jsonl").exists() or (out / "results.jsonl").is_symlink()


def test_a_planted_symlink_to_a_missing_file_is_not_created(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / ".lock").symlink_to(tmp_path / "would_be_created")
    with pytest.raises(ValueError, match="is a symbolic link"):
        run_sweep(fx.FAST, "tiny", out, workers=1, progress=False)
    assert not (tmp_path / "would_be_created").exists()


def test_a_planted_hard_link_fifo_or_folder_is_refused(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "out"
    out.mkdir()
    os.link(victim, out / ".lock")
    with pytest.raises(ValueError, match=r"\.lock has 2 hard links"):
        run_sweep(fx.FAST, "tiny", out, workers=1, progress=False)
    assert victim.read_text() == "precious\n"
    (out / ".lock").unlink()
    os.link(victim, out / "results.jsonl")
    with pytest.raises(ValueError, match=r"results\.jsonl has 2 hard links"):
        run_sweep(fx.FAST, "tiny", out, workers=1, progress=False)
    assert victim.read_text() == "precious\n"
    (out / "results.jsonl").unlink()
    os.mkfifo(out / "results.jsonl")  # a reader would block on it for ever
    with pytest.raises(ValueError, match=r"results\.jsonl is not a regular file"):
        run_sweep(fx.FAST, "tiny", out, workers=1, progress=False)
    (out / "results.jsonl").unlink()
    (out / "sweep.json").mkdir()
    with pytest.raises(ValueError, match=r"sweep\.json"):
        run_sweep(fx.FAST, "tiny", out, workers=1, progress=False)


def test_the_cli_refuses_a_planted_symlink_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.jsonl").symlink_to(victim)
    assert main(["sweep", "fast", "--preset", "tiny", "--out", str(out), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("zlnotes sweep: error: out: ") and "symbolic link" in err
    assert victim.read_text() == "precious\n"


def test_a_symlinked_output_folder_chosen_by_the_user_works(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert run_sweep(fx.FAST, "tiny", tmp_path / "link", workers=1, progress=False).run_now == 6
    assert len(load_results(tmp_path / "real")) == 6


# -- folders that change under a running sweep --------------------------------------------


def test_deleting_the_lock_lets_no_second_sweep_in(tmp_path: Path) -> None:
    """rm DIR/.lock mid-sweep: a second sweep is still refused, the first stops with an error, no key twice."""
    out, gate = tmp_path / "out", tmp_path / "gate"
    command = [*CLI, "sweep", "gated", "--preset", "tiny", "--out", str(out), "--workers", "1"]
    first = start_sweep(out, "gated", "--workers", "1", gate=gate)
    try:
        wait_for_lines(first, out / "results.jsonl", 1)
        deadline = time.monotonic() + PROCESS_TIMEOUT
        while not Path(f"{gate}.waiting").exists():  # the first point is saved and checked; the second waits
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.01)
        (out / ".lock").unlink()
        # without the gate: were it let in, it would run every point at once
        second = subprocess.run(command, env=env(), capture_output=True, text=True, timeout=PROCESS_TIMEOUT)
        assert first.poll() is None, ("the first sweep ended before the second one started", first.communicate())
        gate.touch()
    finally:
        gate.touch()
        code, stdout, stderr = finish(first)
    assert second.returncode == 2 and "is in use by another running sweep" in second.stderr, second.stderr
    assert code == 1 and f"{out / '.lock'} was removed while the sweep ran" in stderr, stderr
    assert "run now" not in stdout  # no summary that looks like success
    assert raw_keys(out / "results.jsonl") == Counter([point_key(fx.GATED.points("tiny")[0])])
    done = subprocess.run(command, env=env(), capture_output=True, text=True, timeout=PROCESS_TIMEOUT)
    assert done.returncode == 0, done.stderr
    assert raw_keys(out / "results.jsonl") == Counter(point_key(p) for p in fx.GATED.points("tiny"))


@pytest.mark.parametrize("how", ["removed", "replaced"])
def test_a_folder_removed_or_replaced_mid_sweep_stops_it_with_an_error(tmp_path: Path, how: str) -> None:
    out = tmp_path / "runs" / "out"
    out.parent.mkdir()
    first = start_sweep(out, "slow", "--workers", "2")
    try:
        wait_for_lines(first, out / "results.jsonl", 2)
        if how == "removed":
            shutil.rmtree(out)  # `make clean` while it runs
        else:
            out.rename(tmp_path / "moved")
            out.mkdir()
    finally:
        code, stdout, stderr = finish(first)
    assert code == 1, (stdout, stderr)
    # a replacement seen before the new folder exists is a removal
    # (rm -rf removes .lock before the folder: a sweep may see either go)
    said = ["removed"] if how == "removed" else ["removed", "replaced"]
    seen = [f"{what} was {w} while the sweep ran" for what in (f"the folder {out}", out / ".lock") for w in said]
    assert any(message in stderr for message in seen), stderr[-400:]
    assert "rerun to resume" in stderr
    assert stderr.count("Traceback") == 0 and "run now" not in stdout


def test_a_results_file_replaced_mid_sweep_stops_it(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = start_sweep(out, "slow", "--workers", "1")
    try:
        wait_for_lines(first, out / "results.jsonl", 2)
        (out / "results.jsonl").rename(out / "elsewhere.jsonl")
        (out / "results.jsonl").write_text("")
    finally:
        code, _, stderr = finish(first)
    assert code == 1 and f"{out / 'results.jsonl'} was" in stderr, stderr


# -- checksums -------------------------------------------------------------------------------


def test_records_carry_a_checksum_and_a_changed_record_is_refused(tmp_path: Path) -> None:
    run_sweep(fx.FAST, "tiny", tmp_path, workers=1, progress=False)
    path = tmp_path / "results.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    records = [json.loads(line) for line in lines]
    assert all(r["checksum"].startswith("sha256:") and len(r["checksum"]) == 71 for r in records)
    assert len({r["checksum"] for r in records}) == len(records)

    changed = json.loads(lines[2])
    changed["result"]["trace"] = changed["result"]["trace"] * (1 + 2**-52)  # one ulp: valid JSON, same keys
    path.write_text("".join(lines[:2]) + json.dumps(changed) + "\n" + "".join(lines[3:]))
    with pytest.raises(ValueError, match=r"line 3: the record does not match its checksum"):
        load_results(path)
    with pytest.raises(ValueError, match="does not match its checksum"):
        run_sweep(fx.FAST, "tiny", tmp_path, workers=1, progress=False)

    del changed["checksum"]  # a record stripped of its checksum among checksummed ones
    path.write_text("".join(lines[:2]) + json.dumps(changed) + "\n" + "".join(lines[3:]))
    with pytest.raises(ValueError, match="line 3 has no checksum but line 1 has one"):
        load_results(path)


def test_old_records_without_checksums_load_and_get_them_on_resume(tmp_path: Path) -> None:
    run_sweep(fx.FAST, "tiny", tmp_path, workers=1, progress=False)
    path = tmp_path / "results.jsonl"
    new = load_results(path)
    old = [{k: v for k, v in json.loads(line).items() if k != "checksum"} for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps(r) + "\n" for r in old[:4]))  # as written before checksums, 2 to run
    assert [r["result"] for r in load_results(path)] == [r["result"] for r in new[:4]]

    summary = run_sweep(fx.FAST, "tiny", tmp_path, workers=1, progress=False)
    assert (summary.already_done, summary.run_now) == (4, 2)
    resumed = [json.loads(line) for line in path.read_text().splitlines()]
    assert all("checksum" in r for r in resumed)
    assert [{k: v for k, v in r.items() if k != "checksum"} for r in resumed[:4]] == old[:4]  # no value changed
    assert json.loads((tmp_path / "sweep.json").read_text())["format"] == 2


def test_the_books_stored_sweep_still_loads() -> None:
    """data/dichotomy_book was written before records carried checksums: it loads unchanged."""
    if not (DATA / "results.jsonl").exists():
        pytest.skip("no stored sweep")
    records = load_results(DATA)
    assert len(records) == lines_in(DATA / "results.jsonl")
    assert all("checksum" not in r for r in records) or all("checksum" in r for r in records)


# -- schedulers that are not Dask --------------------------------------------------------


@pytest.fixture
def silent_listener() -> Iterator[str]:
    """A TCP server on 127.0.0.1 that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"tcp://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(5)
    for conn in accepted:
        conn.close()
    server.close()


@pytest.fixture
def http_server() -> Iterator[str]:
    """A tiny HTTP server on 127.0.0.1."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"tcp://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("server", ["silent_listener", "http_server"])
def test_a_server_that_is_not_dask_fails_in_time_naming_the_address(
    tmp_path: Path, server: str, request: pytest.FixtureRequest
) -> None:
    pytest.importorskip("distributed")
    address = request.getfixturevalue(server)
    start = time.monotonic()
    with pytest.raises(SweepError, match=rf"^cannot connect to the Dask scheduler at {address}: ") as info:
        run_sweep(fx.FAST, "tiny", tmp_path / "out", scheduler=address, scheduler_timeout=1.0)
    assert time.monotonic() - start < 8
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()


def test_the_cli_gives_up_on_an_http_server_in_one_line(tmp_path: Path, http_server: str) -> None:
    pytest.importorskip("distributed")
    start = time.monotonic()
    done = subprocess.run(
        [*CLI, "sweep", "fast", "--preset", "tiny", "--out", str(tmp_path / "out"),
         "--scheduler", http_server, "--scheduler-timeout", "1"],
        env=env(), capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.startswith(f"zlnotes sweep: cannot connect to the Dask scheduler at {http_server}")
    assert done.stderr.count("\n") == 1, done.stderr
    assert time.monotonic() - start < 30


def test_a_tls_address_without_certificates_is_refused_at_once(tmp_path: Path) -> None:
    """A clear message, and the process exits without Dask's 60 s wait for a half-made client."""
    pytest.importorskip("distributed")
    start = time.monotonic()
    done = subprocess.run(
        [*CLI, "sweep", "fast", "--preset", "tiny", "--out", str(tmp_path / "out"),
         "--scheduler", "tls://127.0.0.1:1"],
        env=env(), capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr == (
        "zlnotes sweep: error: scheduler: tls://127.0.0.1:1 is a TLS address, but Dask's configuration has no "
        "TLS certificates (distributed.comm.tls); configure them or use a tcp:// address\n"
    )
    assert time.monotonic() - start < 30
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), True, "10"])
def test_scheduler_timeout_must_be_positive_seconds(tmp_path: Path, timeout: object) -> None:
    with pytest.raises(ValueError, match="scheduler_timeout must be a finite number of seconds > 0"):
        run_sweep(fx.FAST, "tiny", tmp_path / "out", scheduler="tcp://127.0.0.1:1", scheduler_timeout=timeout)  # type: ignore[arg-type]


# -- workers die with their parent -----------------------------------------------------------


def test_kill_9_of_the_sweep_leaves_no_process_behind(tmp_path: Path) -> None:
    """kill -9 of the sweep's process alone: its pool workers die too and release its stdout."""
    psutil = pytest.importorskip("psutil")
    out = tmp_path / "out"
    process = start_sweep(out, "sleepy", "--workers", "2")
    children: list = []
    try:
        wait_for_lines(process, out / "results.jsonl", 1)  # workers started, busy with their next points
        children = psutil.Process(process.pid).children(recursive=True)
        assert len(children) >= 2, children
        os.kill(process.pid, signal.SIGKILL)
        # communicate returns once no process holds the pipes: `zlnotes sweep ... | tee log` returns
        process.communicate(timeout=20)
        gone, alive = psutil.wait_procs(children, timeout=10)
        assert alive == [], [(p.pid, p.cmdline()) for p in alive]
    finally:
        for child in children:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == -signal.SIGKILL


def test_the_sweep_does_not_wait_for_workers_after_a_failure(tmp_path: Path) -> None:
    """A worker dying ends the sweep with an error; no worker process is left behind."""
    psutil = pytest.importorskip("psutil")
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with pytest.raises(SweepError, match="a worker process died"):
        run_sweep(fx.DIES, "tiny", tmp_path, workers=2, progress=False)
    deadline = time.monotonic() + 20
    while True:
        left = [p for p in psutil.Process().children(recursive=True) if p.pid not in before and p.is_running()
                and p.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(p.cmdline())]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert left == []


# -- output locations that cannot be written ---------------------------------------------------


def test_a_file_as_out_is_one_line_and_changes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("mine\n")
    assert main(["sweep", "fast", "--preset", "tiny", "--out", str(target), "--workers", "1"]) == 2
    assert capsys.readouterr().err == f"zlnotes sweep: error: out must be a folder; {target} is a file\n"
    assert target.read_text() == "mine\n" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_missing_parent_is_one_line_and_is_not_created(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "no" / "such" / "out"
    assert main(["sweep", "fast", "--preset", "tiny", "--out", str(out), "--workers", "1"]) == 2
    assert capsys.readouterr().err == (
        f"zlnotes sweep: error: out: the parent folder {out.parent} does not exist; create it first or choose "
        "another output folder\n"
    )
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "file").write_text("")
    assert main(["sweep", "fast", "--preset", "tiny", "--out", str(tmp_path / "file" / "out")]) == 2
    assert capsys.readouterr().err == (
        f"zlnotes sweep: error: out: {tmp_path / 'file'} is a file, not a folder; choose another output folder\n"
    )


def test_a_read_only_out_is_one_line_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder that cannot be written (read-only for this user, or on a read-only file system)."""
    if os.geteuid() != 0:
        base = tmp_path / "ro"
        (base / "done").mkdir(parents=True)
        (base / "done" / "kept.txt").write_text("kept\n")
        for d in (base / "done", base):
            os.chmod(d, 0o555)
    elif Path("/proc/sys").is_dir() and not os.access("/proc/sys", os.W_OK):
        base = Path("/proc/sys")  # root writes anywhere, except on a read-only file system
    else:
        pytest.skip("root, and no read-only file system to try")
    try:
        cases = [(base, f"out: the folder {base} is not writable"),
                 (base / "zlnotes-new", f"out: cannot create the folder {base / 'zlnotes-new'}: its parent {base} "
                  "is not writable")]
        if base != Path("/proc/sys"):
            cases.append((base / "done", f"out: the folder {base / 'done'} is not writable"))
        before = sorted(p.name for p in base.iterdir())
        for out, message in cases:
            assert main(["sweep", "fast", "--preset", "tiny", "--out", str(out), "--workers", "1"]) == 2
            assert capsys.readouterr().err == f"zlnotes sweep: error: {message}\n"
        assert sorted(p.name for p in base.iterdir()) == before
    finally:
        if base != Path("/proc/sys"):
            for d in (base, base / "done"):
                os.chmod(d, 0o755)
