"""Fixtures: every test that needs a database gets its own, on a real PostgreSQL + pgvector."""

from __future__ import annotations

import os

import pytest

from imgsearch.db.connection import Database
from imgsearch.db.schema import open_database

from .support import artefacts, pg

# The suite keeps the cores busy with its workers, their subprocesses and the database servers, so
# each process computes on one thread (torch, scikit-learn, ONNX Runtime: imgsearch's `cores()`
# reads OMP_NUM_THREADS as Ray's workers set it), and OpenMP threads that wait for work sleep
# instead of spinning: threads that wait on each other on a busy machine cost a tenth of the
# suite's CPU for nothing. Set before anything loads OpenMP; the subprocesses the tests start
# inherit them (a test of thread counts sets its own). Speed only: what is computed is the same.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_branch: pg.Branch | None = None

# The test files that take longest (wall seconds on 2 cores, two workers, 2026-12-05) run first: the
# workers take files in this order (pyproject's --no-loadscope-reorder), each the next one as it
# nears the end of its last, so the last ones are short and the workers end together. A file not
# named keeps its place after these.
LONGEST_FIRST = (
    "test_benchmarks.py",  # 130 s: every benchmark's smoke run
    "test_page_journeys.py",  # 55 s
    "test_web.py",  # 45 s
    "test_cli_journeys.py",  # 40 s
    "test_text_search.py",  # 40 s
    "test_index_tuning.py",  # 36 s
    "test_ray_engine.py",  # 25 s
    "test_hostile_inputs.py",  # 22 s
)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """`-n auto` (pyproject's addopts): one worker more than the usable cores, at most 8. A
    worker waits about a tenth of its time (for a browser, a subprocess, a server starting),
    so with one per core the cores idle for as long (2 cores: 1.75 busy, 1.95 with 3 workers);
    past 8 the longest file (test_benchmarks) sets the time. PYTEST_XDIST_AUTO_NUM_WORKERS
    still decides where it is set."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # xdist's own hook reads it
    return min(len(os.sched_getaffinity(0)) + 1, 8)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: files stay whole


def _chosen_branch() -> pg.Branch:
    global _branch
    if _branch is None:
        _branch = pg.choose_branch()
    return _branch


def pytest_report_header(config: pytest.Config) -> str:
    branch = _chosen_branch()
    return f"imgsearch test database: {branch.name} ({branch.reason})"


@pytest.fixture(scope="session")
def pg_admin_url():
    with pg.server_admin_url(_chosen_branch()) as url:
        yield url


@pytest.fixture
def empty_db(pg_admin_url: str):
    """An isolated database with nothing in it (not even the vector extension)."""
    with pg.scratch_database(pg_admin_url) as url:
        yield Database(url)


@pytest.fixture(scope="session")
def migrated_template(pg_admin_url: str):
    """A database with pgvector and the schema at head, migrated once per session: each test's
    `db` is a copy of it (CREATE DATABASE ... TEMPLATE), much faster than migrating each."""
    with pg.filled_template(pg_admin_url, open_database) as name:
        yield name


@pytest.fixture(scope="module")
def module_db(pg_admin_url: str, migrated_template: str):
    """One database for a module's tests that only read what its fixture wrote."""
    with pg.database_copy(pg_admin_url, migrated_template) as db:
        yield db


@pytest.fixture
def db(pg_admin_url: str, migrated_template: str):
    """An isolated database with pgvector and the schema at head."""
    with pg.database_copy(pg_admin_url, migrated_template) as db:
        yield db


@pytest.fixture(scope="session", autouse=True)
def _isolated_home(tmp_path_factory):
    """The session's imgsearch home (model cache, embedded data), set before session fixtures."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("IMGSEARCH_HOME", str(tmp_path_factory.getbasetemp() / "imgsearch-home"))
        patch.delenv("IMGSEARCH_DATABASE_URL", raising=False)
        patch.delenv("IMGSEARCH_BACKEND", raising=False)
        yield


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path_factory) -> None:
    """No test touches the user's own imgsearch data or database by accident."""
    monkeypatch.delenv("IMGSEARCH_DATABASE_URL", raising=False)
    monkeypatch.setenv("IMGSEARCH_HOME", str(tmp_path_factory.getbasetemp() / "imgsearch-home"))


@pytest.fixture(autouse=True)
def _passwords_remembered_by_this_test_only():
    """A process masks the passwords of every database it has used from then on
    (redaction.remember): a test's own (test_secrets' "... with spaces" masks "with") are
    forgotten after it, so no message of a later test is masked by them."""
    from imgsearch import redaction

    before = set(redaction._remembered)
    yield
    redaction._remembered.intersection_update(before)


@pytest.fixture(scope="session")
def lite0():
    """The default encoder with its real, bundled ImageNet weights, on the CPU (ONNX Runtime,
    the CPU default; exported into this test session's model cache, from the export kept by an
    earlier run of the same code and libraries when there is one: support/artefacts.py)."""
    from imgsearch.encoding.registry import get_encoder

    return artefacts.kept_export(
        "efficientnet-lite0", lambda: get_encoder("efficientnet-lite0", device="cpu", backend="auto")
    )


@pytest.fixture(scope="session")
def lite0_torch():
    """The same encoder run by torch."""
    from imgsearch.encoding.registry import get_encoder

    return get_encoder("efficientnet-lite0", device="cpu", backend="torch")
