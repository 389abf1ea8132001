"""Scripts and `python -m` modules run as a new interpreter runs them, in processes forked from
a warm one.

The suite runs every benchmark's smoke mode (tests/test_benchmarks.py) and some hundred
`imgsearch` command lines (the CLI journeys and the tests that check what a command prints),
each of which would otherwise spend a second or more importing the same libraries (numpy, PIL,
torch, pydantic, imgsearch) before doing its work. `WarmPython` starts one interpreter that imports
them once and then forks a child per run: the child runs the script or module as `__main__`
with its own argv, environment, working folder, standard streams and session, then its exit
handlers, and exits with the script's status. Only modules already imported are shared;
everything the run does happens as in a new interpreter. The warm process itself runs nothing
but a loop that forks and reaps (single-threaded: no lock of its can be held in a child); the only
thread its imports start is numpy's OpenBLAS pool, which stops itself around a fork.

What a warm run does not show is the command's own start-up: tests/test_structure.py checks what
each start imports in new interpreters, and the installed-package and server-supervision
journeys and the export test start real ones.
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

# imported once by the warm process: what most runs import (open_clip, with torchvision and timm,
# for the text-search commands), and nothing else that starts threads at import (onnxruntime, and
# scikit-learn through pyarrow's allocator, do: the children import them themselves)
WARM_IMPORTS = ("numpy", "PIL.Image", "psycopg", "torch", "open_clip", "imgsearch.library", "imgsearch.cli")

_SERVER = r"""
import atexit, importlib, json, os, runpy, select, sys, traceback

for name in json.loads(sys.argv[1]):
    importlib.import_module(name)


def child(job):
    os.setsid()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    for fd, path in ((1, job["stdout"]), (2, job["stderr"])):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
    os.chdir(job["cwd"])
    os.environ.clear()
    os.environ.update(job["env"])
    code = 0
    try:
        if job.get("module"):  # as `python -m MODULE ARGS` (argv[0] becomes the module's file)
            sys.argv = ["-m", *job["args"]]
            sys.path[0] = job["cwd"]
            runpy.run_module(job["module"], run_name="__main__", alter_sys=True)
        else:
            sys.argv = [job["script"], *job["args"]]
            sys.path[0] = os.path.dirname(os.path.abspath(job["script"]))
            runpy.run_path(job["script"], run_name="__main__")
    except SystemExit as stop:
        if stop.code is None:
            code = 0
        elif isinstance(stop.code, int):
            code = stop.code
        else:
            print(stop.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    try:
        atexit._run_exitfuncs()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


requests = os.fdopen(sys.stdin.fileno(), "rb", buffering=0)
replies = sys.stdout
running = {}  # pid -> job id
pending = b""
open_ = True
while open_ or running:
    ready, _, _ = select.select([requests] if open_ else [], [], [], 0.02)
    if ready:
        chunk = requests.read(65536)
        if not chunk:
            open_ = False
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            job = json.loads(line)
            pid = os.fork()
            if pid == 0:
                child(job)
            running[pid] = job["id"]
            replies.write(json.dumps({"id": job["id"], "pid": pid}) + "\n")
            replies.flush()
    while running:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            break
        job_id = running.pop(pid, None)
        if job_id is not None:
            code = os.waitstatus_to_exitcode(status)
            replies.write(json.dumps({"id": job_id, "returncode": code}) + "\n")
            replies.flush()
"""


@dataclass
class Finished:
    """What a run left: as subprocess.run(..., capture_output=True, text=True) gives it."""

    returncode: int
    stdout: str
    stderr: str
    args: list[str] = field(default_factory=list)


class WarmPython:
    """One warm interpreter (`WARM_IMPORTS` imported); `run` and `run_module` fork it for one
    run each (several may run at once, from several threads)."""

    def __init__(self, imports: tuple[str, ...] = WARM_IMPORTS) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _SERVER, json.dumps(list(imports))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.ids = itertools.count()
        self.lock = threading.Lock()
        self.replies: dict[int, queue.Queue[dict]] = {}
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout
        for line in self.process.stdout:
            reply = json.loads(line)
            with self.lock:
                box = self.replies.get(reply["id"])
            if box is not None:
                box.put(reply)
        with self.lock:  # the warm process ended: every waiting run learns it
            for box in self.replies.values():
                box.put({})

    def run(self, script: Path, args: list[str], env: dict[str, str], cwd: Path, timeout: float) -> Finished:
        """Run `script` with `args` as `python script args...` would in `cwd` with `env`; killed
        (with its whole session) after `timeout` seconds."""
        return self._job(
            {"script": str(script)}, [sys.executable, str(script), *args], args, env, cwd, timeout
        )

    def run_module(
        self, module: str, args: list[str], env: dict[str, str], cwd: Path, timeout: float
    ) -> Finished:
        """Run `python -m module args...` in `cwd` with `env`, as `run` runs a script."""
        return self._job({"module": module}, [sys.executable, "-m", module, *args], args, env, cwd, timeout)

    def _job(
        self, what: dict, argv: list[str], args: list[str], env: dict[str, str], cwd: Path, timeout: float
    ) -> Finished:
        job_id = next(self.ids)
        box: queue.Queue[dict] = queue.Queue()
        with tempfile.TemporaryDirectory(prefix="warm-run-") as streams:
            out, err = Path(streams) / "stdout", Path(streams) / "stderr"
            job = {**what, "id": job_id, "args": args, "env": env, "cwd": str(cwd)}
            job |= {"stdout": str(out), "stderr": str(err)}
            with self.lock:
                self.replies[job_id] = box
                assert self.process.stdin
                self.process.stdin.write(json.dumps(job) + "\n")
                self.process.stdin.flush()
            try:
                pid = self._reply(box, 30)["pid"]
                try:
                    reply = self._reply(box, timeout)
                except TimeoutError:
                    os.killpg(pid, signal.SIGKILL)
                    reply = self._reply(box, 30)
            finally:
                with self.lock:
                    self.replies.pop(job_id, None)
            return Finished(
                reply["returncode"], out.read_text(errors="replace"), err.read_text(errors="replace"), argv
            )

    def _reply(self, box: queue.Queue[dict], timeout: float) -> dict:
        try:
            reply = box.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError from None
        if not reply:
            raise RuntimeError(f"the warm interpreter ended (status {self.process.wait()})")
        return reply

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait(timeout=60)


_shared: WarmPython | None = None
_shared_lock = threading.Lock()


def shared() -> WarmPython:
    """This test process's warm interpreter, started on first use, ended when the process exits."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = WarmPython()
            atexit.register(_shared.close)
        return _shared
