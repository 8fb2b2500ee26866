"""Shared helpers: the repository's paths and the `veil` command line the
Python results are compared with."""

import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"


def veil_binary():
    """The command line, built (debug, as `cargo test` builds it) if it is
    not there yet; `VEIL_BIN` names another."""
    given = os.environ.get("VEIL_BIN")
    if given:
        return given
    path = ROOT / "target" / "debug" / "veil"
    if not path.exists():
        subprocess.run(
            ["cargo", "build", "-p", "cli", "--bin", "veil"], cwd=ROOT, check=True
        )
    return str(path)


@pytest.fixture(scope="session")
def veil_bin():
    return veil_binary()
