"""Server settings sized to the machine (memory and cores), for the embedded server and as advice.

The embedded server runs with `server_settings()`, written to `imgsearch.conf` in its data
directory; `IMGSEARCH_SERVER_SETTINGS="shared_buffers=2GB,work_mem=16MB"` overrides any of them
(or adds other PostgreSQL settings). `db status` shows the values a server runs with, whichever
server it is, so an external PostgreSQL can be compared with the same advice (docs/operations/postgresql.md).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from imgsearch.config import SERVER_SETTINGS_ENV as SETTINGS_ENV
from imgsearch.errors import ImgsearchError

SHOWN = (
    "shared_buffers",
    "effective_cache_size",
    "maintenance_work_mem",
    "work_mem",
    "max_parallel_maintenance_workers",
    "max_parallel_workers_per_gather",
    "max_worker_processes",
    "dynamic_shared_memory_type",
    "jit",
)
_NAME = re.compile(r"^[a-z][a-z0-9_.]*$")
# what imgsearch itself sets to run and reach its server: changing them leaves it unusable
CONTROLLED = frozenset(
    {
        "port",
        "listen_addresses",
        "unix_socket_directories",
        "unix_socket_group",
        "unix_socket_permissions",
        "data_directory",
        "config_file",
        "hba_file",
        "ident_file",
        "external_pid_file",
        "include",
        "include_dir",
        "include_if_exists",
    }
)
_VALUE = re.compile(r"^[A-Za-z0-9_.+-]+$")
MiB = 2**20


def machine_memory() -> int:
    """Bytes of memory this process may use: physical memory, or a smaller cgroup limit."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            raw = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if raw.isdigit():
            total = min(total, int(raw))
    return total


def machine_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _mb(value: float) -> str:
    return f"{max(1, int(value // MiB))}MB"


def recommended(memory: int, cores: int, shm_free: int | None = None) -> dict[str, str]:
    """PostgreSQL settings for a machine with `memory` bytes and `cores` cores, mostly serving
    imgsearch: a quarter of memory as shared buffers (so an HNSW index stays in memory), up to
    4 GB of maintenance memory (an HNSW build that fits is several times faster), index builds on
    every core, and file-backed parallel memory where /dev/shm is too small for a build."""
    maintenance = min(memory // 8, 4 * 2**30)
    settings = {
        "shared_buffers": _mb(min(memory // 4, 32 * 2**30)),
        "effective_cache_size": _mb(memory * 3 // 4),
        "maintenance_work_mem": _mb(maintenance),
        "work_mem": _mb(min(max(memory // 512, 4 * MiB), 64 * MiB)),
        "max_parallel_maintenance_workers": str(min(max(cores - 1, 1), 8)),
        "max_parallel_workers_per_gather": str(min(max(cores // 2, 1), 4)),
        "max_worker_processes": str(max(8, cores + 4)),
        "jit": "off",  # a search is milliseconds; JIT compiling its plan costs more
    }
    if shm_free is not None and shm_free < maintenance * 2:
        settings["dynamic_shared_memory_type"] = "mmap"  # a parallel HNSW build shares its graph
    return settings


def overrides(raw: str | None) -> dict[str, str]:
    """`name=value,name=value` from IMGSEARCH_SERVER_SETTINGS; a malformed entry is an error."""
    result: dict[str, str] = {}
    for item in (raw or "").split(","):
        if not item.strip():
            continue
        name, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not _NAME.match(name) or not _VALUE.match(value):
            raise ImgsearchError(
                f"{SETTINGS_ENV}: {item.strip()!r} is not name=value "
                "(for example shared_buffers=2GB,work_mem=16MB)."
            )
        if name.lower() in CONTROLLED:
            raise ImgsearchError(
                f"{SETTINGS_ENV}: {name} is set by imgsearch itself (where and how its server "
                "listens, where its files are); it cannot be overridden."
            )
        result[name] = value
    return result


def _shm_free() -> int | None:
    try:
        stat = os.statvfs("/dev/shm")
    except OSError:
        return None
    return stat.f_bavail * stat.f_frsize


def server_settings(raw: str | None = None) -> dict[str, str]:
    """The embedded server's settings on this machine, with the overrides `raw`
    (Settings.server_settings: IMGSEARCH_SERVER_SETTINGS)."""
    settings = recommended(machine_memory(), machine_cores(), _shm_free())
    settings.update(overrides(raw))
    return settings


def config_text(settings: dict[str, str]) -> str:
    lines = [f"# written by imgsearch (see {SETTINGS_ENV}); edits are replaced at the next start"]
    lines += [f"{name} = '{value}'" for name, value in sorted(settings.items())]
    return "\n".join(lines) + "\n"
