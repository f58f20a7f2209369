"""Tiered execution: a new program answers from its numpy code while Numba compiles it.

In GRAPH_MODE on the CPU, ``compile_mode`` (``set_context(compile_mode=...)`` or the
environment variable ``S2S_AD_COMPILE``) chooses how a new program gets machine code:

* ``"background"`` (default): the program's first calls run its generated numpy code (the
  code PYNATIVE_MODE runs), while one worker thread gets the machine code: it starts a child
  process that compiles the Numba source into the disk cache, then loads it from there (see
  :func:`worker`). When that is done, the program's dispatcher calls the machine code from
  its next call on; nothing is checked per call (the switch replaces the function the
  dispatcher calls). A compile that fails leaves the program on numpy, with one warning.
* ``"blocking"``: the first call compiles and then runs the machine code (the tests use it).
* ``"numpy"``: nothing is compiled (:func:`s2s_ad.context.backend` gives ``"python"``).

Numba compiles with the GIL held for most of its time: on a thread of the caller's process it
slows the caller's numpy calls (each waits for the GIL after every operation that released
it; a W7 gradient took 104 ms beside a compiling thread, 53 ms beside a compiling process),
which is why the compile runs in a child process where the disk cache allows. :func:`wait`
blocks until every queued compile is done (benchmarks and tests use it).
"""

from __future__ import annotations

import atexit
import logging
import os
import pickle
import queue
import subprocess
import sys
import tempfile
import threading
import time
import warnings
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import context, diskcache
from .backend import compile_source, compile_split, direct_entry
from .codegen import loop_namespace
from .diskcache import FirstCall

log = logging.getLogger("s2s_ad.tiered")

_queue: queue.Queue[Tier] = queue.Queue()
_worker: threading.Thread | None = None
_worker_lock = threading.Lock()


def background() -> bool:
    """Whether new GRAPH_MODE programs compile in the background (``compile_mode``)."""
    return context.get_context("compile_mode") == "background"


WARM_DELAY = 0.05  # seconds a warm start's loading of machine code waits after its first result


class Tier:
    """The background compile of one program: the Numba ``source`` of function ``fname``,
    compiled for the argument types of the program's first call, then swapped into its
    owner (a :class:`~s2s_ad.runtime.Compiled`: its ``fn``, ``entry``, dispatchers and fast calls).
    ``warm``: the program was loaded by a warm start, so its machine code is most likely in the
    disk cache already: the worker loads it without starting a compiling process when it is."""

    def __init__(self, source: str, fname: str, split: tuple[str, dict[str, str]] | None = None, warm: bool = False):
        self.source = source
        self.fname = fname
        self.split = split  # (main source, kernels) of a program split into loop kernels
        self.warm = warm
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.ready: Callable | None = None  # Numba's dispatcher, once compiled
        self.error: BaseException | None = None
        self.seconds: float | None = None  # how long the compile took
        self.started = False
        # set after the program's first result: the worker then loads Numba while a process compiles
        self.answered = threading.Event()
        self.process_ok: bool | None = None  # whether a compiling process filled the disk cache
        self._owner: weakref.ref | None = None
        self._arrays: list | None = None
        self._dispatchers: list[Callable] = []

    def start(self, owner: Any, arrays: list) -> None:
        """Queue the compile for the types of ``arrays`` (the program's flat inputs)."""
        if self.started:
            return
        self.started = True
        self._owner = weakref.ref(owner)
        self._arrays = list(arrays)
        _queue.put(self)
        _ensure_worker()

    def attach(self, dispatch: Callable) -> None:
        """Register a dispatcher generated for the owner (its globals' ``fn`` is what it
        calls); it is pointed at the machine code now or when that is ready."""
        with self.lock:
            self._dispatchers.append(dispatch)
            if self.ready is not None:
                dispatch.__globals__["fn"] = direct_entry(self.ready)

    def run(self) -> None:
        """Compile (on the worker thread) and switch the owner to the machine code."""
        t0 = time.perf_counter()
        if self.warm:
            # queued as the first result is returned: the caller's code right after its first
            # call runs before this thread imports Numba (its import holds the GIL)
            time.sleep(WARM_DELAY)
        try:
            arrays, self._arrays = self._arrays or [], None
            children: list[subprocess.Popen] = []
            # a split program's kernels compile here, on this thread, unless Numba compiles them
            numba_kernels = self.split is None or not _kernels_here()
            if worker() == "process" and numba_kernels and not (self.warm and self._on_disk()):
                n = min(processes(), len(self.split[1])) if self.split is not None else 1
                for part in range(max(n, 1)):
                    child = _start_child(self.source, self.fname, self.split, arrays, (part, n))
                    if child is None:
                        break
                    children.append(child)
            if children:
                # Waiting takes no GIL. Numba (and its CPU target, which loading machine code
                # needs) is imported while the processes compile, but only once the first
                # result is out: that first (numpy) call runs free of the import's GIL time.
                while any(c.poll() is None for c in children):
                    if self.answered.wait(0.05):
                        _load_numba()
                        break
                self.process_ok = all([_finish_child(c, self.fname) for c in children])
            entry = None
            if self.split is not None:
                # the kernels compile (or load) on their first call, for the types they meet
                fn = compile_split(self.split[0], self.fname, self.split[1])
                fn(*arrays)
            else:
                import numba  # the worker imports Numba, not the caller's thread

                sig = tuple(numba.typeof(a) for a in arrays)
                fn = compile_source(self.source, self.fname, "numba")
                if type(fn) is FirstCall:
                    fn.compile(sig)
                    entry, fn = fn, fn.dispatcher
                else:
                    fn.compile(sig)
        except Exception as err:
            self.error = err
            warnings.warn(
                f"s2s_ad: Numba could not compile {self.fname} in the background "
                f"({type(err).__name__}: {err}); its calls keep running the generated numpy code",
                RuntimeWarning,
                stacklevel=1,
            )
            self.done.set()
            return
        self.seconds = time.perf_counter() - t0
        owner = self._owner() if self._owner is not None else None
        with self.lock:
            self.ready = fn
            if owner is not None:
                if entry is not None:
                    owner.entry = entry  # holds the generated module as long as the program lives
                owner.fn = fn
            direct = direct_entry(fn)
            for d in self._dispatchers:
                d.__globals__["fn"] = direct
            if owner is not None:
                owner.machine_code_ready()
        log.info(
            "compiled %s in the background in %.2f s; its calls run the machine code now", self.fname, self.seconds
        )
        self.done.set()

    def _on_disk(self) -> bool:
        """Whether the disk cache holds machine code for every function Numba would compile."""
        if self.split is None:
            return diskcache.has_entry(self.source, self.fname)
        return all(diskcache.has_entry(src, name) for name, src in self.split[1].items())


def _kernels_here() -> bool:
    """Whether a split program's kernels compile in this process (:mod:`s2s_ad.llvmloops`)."""
    from . import llvmloops  # the kernel compiler: only split programs need it, not `import s2s_ad`

    return llvmloops.enabled()


def _load_numba() -> None:
    """Import Numba and load its CPU target's registries (what its first load of machine code
    from the cache does otherwise, about as long as the import)."""
    import numba
    from numba.core.compiler_lock import global_compiler_lock
    from numba.core.registry import cpu_target

    del numba
    with global_compiler_lock:
        cpu_target.target_context.refresh()
        cpu_target.typing_context.refresh()


def worker() -> str:
    """Where the background compile runs: ``"process"`` (a child process that compiles into
    the disk cache, from which the worker thread then loads the machine code: Numba's compile
    then takes no GIL from the caller's thread) when the disk cache is on, else ``"thread"``
    (Numba compiles on the worker thread). ``S2S_AD_COMPILE_WORKER=thread`` forces the
    thread."""
    if os.environ.get("S2S_AD_COMPILE_WORKER", "").strip().lower() == "thread" or diskcache.cache_dir() is None:
        return "thread"
    return "process"


def _types(arrays: list) -> list[tuple[str, int]]:
    out = []
    for a in arrays:
        a = np.asarray(a)
        out.append((a.dtype.str, a.ndim))
    return out


_ERRORS: dict[int, Any] = {}  # child pid -> the file its stderr goes to


_spare: list[subprocess.Popen] = []  # a compiling process started ahead of its job (prestart)
_spare_lock = threading.Lock()


def prestart() -> None:
    """Start a compiling process now, ahead of a program about to be built (called before a
    new program is traced, in background mode with the process worker): it imports Numba and
    initialises its CPU target (about a second, at a lower priority than this process) while
    this process traces, differentiates and generates code, and then waits for its job. One is
    kept at most (more would slow the trace on a machine with few cores: the first result
    came 10–20% later with two on two cores); one that gets no job exits when this process
    does."""
    if not background() or worker() != "process":
        return
    with _spare_lock:
        if not _spare:
            proc = _spawn()
            if proc is not None:
                _spare.append(proc)


@atexit.register
def _stop_spare() -> None:
    """At exit: end a prestarted process that got no job (it has written nothing)."""
    with _spare_lock:
        while _spare:
            proc = _spare.pop()
            proc.kill()
            proc.wait()
            _ERRORS.pop(proc.pid).close()


# The compiling process runs at a lower priority from its start (its imports included): the
# parent's own work (tracing, its numpy calls) comes first
_CHILD = (
    "import os\n"
    "if hasattr(os, 'nice'):\n"
    "    try:\n"
    "        os.nice(10)\n"
    "    except OSError:\n"
    "        pass\n"
    "from s2s_ad.tiered import compile_child\n"
    "compile_child()\n"
)


def _spawn() -> subprocess.Popen | None:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])  # this s2s_ad, whatever the child's sys.path
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["S2S_AD_COMPILE"] = "blocking"
    try:
        err_file = tempfile.TemporaryFile()  # not a pipe: the child may outlive an exiting parent
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=err_file,
            env=env,
        )
    except OSError as err:
        log.info("cannot start a compiling process (%s)", err)
        return None
    _ERRORS[proc.pid] = err_file
    return proc


def processes() -> int:
    """How many processes compile the kernels of one split program at once
    (``S2S_AD_COMPILE_PROCESSES``; default: the machine's cores but one, which the calling
    process keeps for its own calls, at least 1 and at most 4). They run at a lower priority
    than the calling process."""
    raw = os.environ.get("S2S_AD_COMPILE_PROCESSES", "").strip()
    try:
        n = int(raw) if raw else min((os.cpu_count() or 1) - 1, 4)
    except ValueError:
        n = 1
    return max(n, 1)


def _start_child(
    source: str,
    fname: str,
    split: tuple[str, dict[str, str]] | None,
    arrays: list,
    part: tuple[int, int] = (0, 1),
) -> subprocess.Popen | None:
    """A process compiling ``source`` (or the kernels of ``split``; with ``part`` ``(i, n)``,
    the i-th of n shares of them, see :func:`share`) for the types of ``arrays`` into the disk
    cache: the one :func:`prestart` started, if it is still alive."""
    with _spare_lock:
        proc = _spare.pop() if _spare else None
    if proc is not None and proc.poll() is not None:
        _finish_child(proc, fname)
        proc = None
    if proc is None:
        proc = _spawn()
    if proc is None:
        log.info("compiling %s on a thread", fname)
        return None
    job = {"source": source, "fname": fname, "types": _types(arrays), "split": split, "part": part}
    if split is not None:  # the kernels' types show when the program runs: the child runs it once
        job["arrays"] = arrays
    data = pickle.dumps(job)

    def write() -> None:
        # on a thread: a child that is still starting up reads its job only once it has
        # imported s2s_ad, and the other children need not wait for that
        try:
            assert proc.stdin is not None
            proc.stdin.write(data)
            proc.stdin.close()
        except OSError as err:  # the child then fails, and the worker compiles what it lacks
            log.info("cannot hand %s to its compiling process (%s)", fname, err)

    threading.Thread(target=write, name="s2s_ad-compile-job", daemon=True).start()
    return proc


def _finish_child(proc: subprocess.Popen, fname: str) -> bool:
    code = proc.wait()
    err_file = _ERRORS.pop(proc.pid)
    err_file.seek(0)
    err = err_file.read()
    err_file.close()
    if code != 0:
        log.info("the process compiling %s failed; compiling on a thread:\n%s", fname, err.decode(errors="replace"))
        return False
    return True


def compile_child() -> None:
    """The compiling process: reads a job (pickled by :func:`_start_child`) from stdin and
    compiles the function through the disk cache for its ``(dtype, ndim)`` argument types
    (a split program: runs it once on the arrays, which compiles its kernels)."""
    # The job is read while Numba starts up, so that the parent's write of it (the arrays
    # fill more than a pipe's buffer) never waits for that
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(sys.stdin.buffer.read()), daemon=True)
    reader.start()
    import numba

    # Numba's CPU target is initialised by its first compile: done here, before the job
    # arrives (a prestarted process waits for it; see prestart)
    numba.njit(lambda x: x + 1.0)(1.0)
    loop_namespace()  # the fused loops' functions (imports s2s_ad.cpumath)
    reader.join()
    data = received[0] if received else b""
    if not data:
        return  # started ahead, and no job came: the parent is gone or needed none
    job = pickle.loads(data)
    if job["split"] is not None:
        main, kernels = job["split"]
        # Another process compiles the kernels not in this share; here they are skipped,
        # their arrays left unfilled: only the types of the values matter for the kernels
        # compiled here (a split program has no control flow)
        fn = compile_split(main, job["fname"], kernels, share(kernels, *job.get("part", (0, 1))))
        with np.errstate(all="ignore"):  # values computed from unfilled arrays
            fn(*job["arrays"])
    else:
        fn = compile_source(job["source"], job["fname"], "numba")
        sig = tuple(
            numba.typeof(np.empty((1,) * ndim, np.dtype(dt)) if ndim else np.dtype(dt).type(0))
            for dt, ndim in job["types"]
        )
        if type(fn) is not FirstCall:
            sys.exit("the disk cache is not usable")
        fn.compile(sig)
    # The machine code is in the disk cache (written and closed): exit at once, without the
    # interpreter's teardown (a fifth of a second with Numba loaded), for which the parent waits
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def share(kernels: dict[str, str], part: int, parts: int) -> set[str]:
    """The names of the kernels that the ``part``-th of ``parts`` compiling processes compiles:
    the kernels dealt out longest first, each to the share with the fewest lines so far."""
    lines = {name: src.count("\n") for name, src in kernels.items()}
    loads = [0] * parts
    mine: set[str] = set()
    for name in sorted(kernels, key=lambda k: (-lines[k], k)):
        k = loads.index(min(loads))
        loads[k] += lines[name]
        if k == part:
            mine.add(name)
    return mine


def _ensure_worker() -> None:
    global _worker
    with _worker_lock:
        if _worker is None or not _worker.is_alive():
            _worker = threading.Thread(target=_work, name="s2s_ad-compile", daemon=True)
            _worker.start()


def _work() -> None:
    while True:
        tier = _queue.get()
        try:
            tier.run()
        finally:
            _queue.task_done()


def wait(timeout: float | None = None) -> bool:
    """Block until every queued background compile is done (at most ``timeout`` seconds);
    whether they are."""
    if timeout is None:
        _queue.join()
        return True
    deadline = time.monotonic() + timeout
    while _queue.unfinished_tasks:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)
    return True


def pending() -> int:
    """The number of programs queued or compiling in the background."""
    return _queue.unfinished_tasks
