"""What the Python tests share: the built tcptape binaries, and the loud skip of a test whose
tool is missing (a failure under TCPTAPE_E2E_REQUIRED=1, as ci/test.sh runs as root)."""

import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def binary(name: str, env: str, package: str) -> str:
    """The built binary `name`: $`env` when set, else the debug or release build."""
    path = os.environ.get(env)
    if path:
        return path
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    for profile in ("debug", "release"):
        candidate = target / profile / name
        if candidate.exists():
            return str(candidate)
    pytest.fail(f"{name} is not built: run `cargo build -p {package}` first")


def analyzer() -> str:
    """The `tcptape` binary (override with TCPTAPE)."""
    return binary("tcptape", "TCPTAPE", "tcptape-analyzer")


def recorder() -> str:
    """The `tcptape-record` binary (override with TCPTAPE_RECORD)."""
    return binary("tcptape-record", "TCPTAPE_RECORD", "tcptape-recorder")


def unavailable(message: str):
    """Skips the calling test loudly, or fails it where every test must run."""
    if os.environ.get("TCPTAPE_E2E_REQUIRED") == "1":
        pytest.fail(message)
    print(f"\nSKIPPED LOUDLY: {message}")
    pytest.skip(message)
