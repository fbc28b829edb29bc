"""Test-wide settings: offline model loading, quiet TensorFlow, paths to shared data."""
import os
import pathlib

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = pathlib.Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> pathlib.Path:
    """../shared/data beside the checkout; tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not beside this checkout")
    return SHARED_DATA


SAMPLE_SOURCES = REPO / "sample_data" / "queries" / "sources.yaml"
SHARED_SOURCES = REPO / "benchmarks" / "shared_query_sources.yaml"


@pytest.fixture(scope="session")
def sample_library(tmp_path_factory):
    """``(library dir, report)`` of the mining job over the bundled sample (mined once per session)."""
    from templates_mining.job import run

    out = tmp_path_factory.mktemp("sample") / "library"
    return out, run(["--sources", str(SAMPLE_SOURCES), "--output", str(out)])


@pytest.fixture(scope="session")
def real_library(tmp_path_factory):
    """``(library dir, report)`` of the mining job over all of ../shared/data/queries (once per session)."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not beside this checkout")
    from templates_mining.job import run

    out = tmp_path_factory.mktemp("real") / "library"
    return out, run(["--sources", str(SHARED_SOURCES), "--output", str(out)])


FAKE_OPENAI_SERVER = REPO / "tests" / "fake_openai_server.py"


@pytest.fixture
def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def fake_openai_url():
    """Base URL (``.../v1``) of tests/fake_openai_server.py in its own process, for the session."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, str(FAKE_OPENAI_SERVER), "--port", "0", "--slow-s", "3"],
                            stdout=subprocess.PIPE, text=True)
    try:
        port = proc.stdout.readline().strip()
        assert port.isdigit(), f"fake server did not start (exit {proc.poll()})"
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
