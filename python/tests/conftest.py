"""Shared helpers: the repository's paths and the `veil` command line the
Python results are compared with."""

import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"


def veil_binary():
    """The command line the Python results are compared with; `VEIL_BIN`
    names one. Otherwise cargo brings it up to date (a no-op when it is):
    the debug build where one exists (`cargo test`, which the README's test
    command runs first, built it), else the release build, which reuses
    the libraries `pip install ./python` just compiled in release, so a
    fresh clone builds only what the command line adds."""
    given = os.environ.get("VEIL_BIN")
    if given:
        return given
    debug = ROOT / "target" / "debug" / "veil"
    if debug.exists():
        # With the workspace's features, as `cargo test --workspace` built
        # it (`-p cli` alone would rebuild the crates whose features differ).
        build = ["--workspace"]
    else:
        # With the features `pip install ./python` built the libraries with.
        build = ["--release", "-p", "cli"]
    subprocess.run(["cargo", "build", *build, "--bin", "veil"], cwd=ROOT, check=True)
    return str(debug if debug.exists() else ROOT / "target" / "release" / "veil")


@pytest.fixture(scope="session")
def veil_bin():
    return veil_binary()
