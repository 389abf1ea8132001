"""Scripts run as `python SCRIPT ARGS...` runs them, in processes forked from a warm one.

The suite runs every benchmark's smoke mode (tests/test_benchmarks.py), two dozen scripts that
each spend a second or more importing the same libraries (numpy, PIL, torch, scikit-learn,
imgsearch) before doing a few seconds of work. `WarmPython` starts one interpreter that imports
them once and then forks a child per script: the child runs the script as `__main__` with its
own argv, environment, working folder, standard streams and session, then its exit handlers,
and exits with the script's status. Only modules already imported are shared; everything the
script does runs as in a new interpreter. The warm process itself runs nothing: the only thread
its imports start is numpy's OpenBLAS pool, which stops itself around a fork.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

# imported once by the warm process: what most smoke runs import, and nothing else that starts
# threads at import (onnxruntime and scikit-learn do: the children import them themselves)
WARM_IMPORTS = ("numpy", "PIL.Image", "psycopg", "torch", "imgsearch.library", "imgsearch.cli")

_SERVER = r"""
import atexit, importlib, json, os, runpy, sys, traceback

for name in json.loads(sys.argv[1]):
    importlib.import_module(name)
requests, replies = sys.stdin, sys.stdout
for line in requests:
    job = json.loads(line)
    pid = os.fork()
    if pid == 0:
        os.setsid()
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        for fd, path in ((1, job["stdout"]), (2, job["stderr"])):
            os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
        os.chdir(job["cwd"])
        os.environ.clear()
        os.environ.update(job["env"])
        sys.argv = [job["script"], *job["args"]]
        sys.path[0] = os.path.dirname(os.path.abspath(job["script"]))
        code = 0
        try:
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
    replies.write(json.dumps({"pid": pid}) + "\n")
    replies.flush()
    _, status = os.waitpid(pid, 0)
    replies.write(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}) + "\n")
    replies.flush()
"""


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str


class WarmPython:
    """One warm interpreter (`WARM_IMPORTS` imported); `run` forks it for one script."""

    def __init__(self, imports: tuple[str, ...] = WARM_IMPORTS) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _SERVER, json.dumps(list(imports))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.replies: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout
        for line in self.process.stdout:
            self.replies.put(line)
        self.replies.put("")  # the warm process ended

    def run(self, script: Path, args: list[str], env: dict[str, str], cwd: Path, timeout: float) -> Finished:
        """Run `script` with `args` as `python script args...` would in `cwd` with `env`; killed
        (with its whole session) after `timeout` seconds."""
        out, err = cwd / f".{script.stem}.stdout", cwd / f".{script.stem}.stderr"
        job = {
            "script": str(script),
            "args": args,
            "env": env,
            "cwd": str(cwd),
            "stdout": str(out),
            "stderr": str(err),
        }
        assert self.process.stdin
        self.process.stdin.write(json.dumps(job) + "\n")
        self.process.stdin.flush()
        pid = json.loads(self._line(30))["pid"]
        try:
            reply = self._line(timeout)
        except TimeoutError:
            os.killpg(pid, signal.SIGKILL)
            reply = self._line(30)
        returncode = json.loads(reply)["returncode"]
        return Finished(returncode, out.read_text(errors="replace"), err.read_text(errors="replace"))

    def _line(self, timeout: float) -> str:
        try:
            line = self.replies.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError from None
        if not line:
            raise RuntimeError(f"the warm interpreter ended (status {self.process.wait()})")
        return line

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait(timeout=30)
