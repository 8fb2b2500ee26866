"""Ctrl-C stops a run: SIGINT to a process in `Model.run` raises
KeyboardInterrupt there promptly, long before the run would have ended.

The run is LR-100 without a dealer: its parties meet their transports
every few hundred milliseconds even at 100,000 rows, and the whole run
takes seconds even in a release build on a fast machine (with a dealer,
a release build finishes 400,000 rows in about a second, so a run that
was never cancelled could pass for one that was)."""

import signal
import subprocess
import sys
import textwrap
import time

from conftest import MODELS

SCRIPT = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import veil
    m = veil.compile(sys.argv[1], dealer=False)
    rng = np.random.default_rng()
    x = rng.uniform(-4, 4, size=(int(sys.argv[2]), 100))
    w, b = rng.uniform(-0.1, 0.1, size=100), 0.5
    small = {"x": x[: len(x) // 10], "w": w, "b": b}
    t = time.perf_counter(); m.run(small); one = time.perf_counter() - t
    print(f"ready {one}", flush=True)
    t = time.perf_counter()
    try:
        m.run({"x": x, "w": w, "b": b})
        print(f"finished {time.perf_counter() - t}", flush=True)
    except KeyboardInterrupt:
        print(f"interrupted {time.perf_counter() - t}", flush=True)
    """
)


def test_ctrl_c_stops_a_run():
    rows = 100_000
    p = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(MODELS / "logreg_100.veil"), str(rows)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = p.stdout.readline()
    assert line.startswith("ready"), (line, p.stderr.read())
    tenth = float(line.split()[1])
    time.sleep(0.5)
    sent = time.perf_counter()
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=600)
    took = time.perf_counter() - sent
    assert out.startswith("interrupted"), (out, err)
    # The whole run would take about ten times the small one's time (a
    # little less: the small one pays the base OTs too).
    assert took < max(2.0, 0.25 * 10 * tenth), (took, tenth)
