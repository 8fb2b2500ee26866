"""veil.party: two parties of a dealer-free model, each in its own Python
process, over mutual TLS on loopback; the client's outputs against the
plaintext reference of the same model."""

import json
import socket
import subprocess
import sys
import textwrap

import numpy as np

import veil

SOURCE = """model two {
    party client;
    party server;
    input x: fixed[batch, 6] private(client) in [-2, 2];
    input w: fixed[6] private(server) in [-1, 1];
    input b: fixed private(server) in [-1, 1];
    let p = sigmoid(x @ w + b);
    output p to client;
}
"""

PARTY = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import veil
    source, me, config, inputs, out = sys.argv[1:6]
    m = veil.compile(source=open(source).read(), dealer=False)
    given = {k: np.asarray(v) for k, v in json.load(open(inputs)).items()}
    result = veil.party(m, as_=me, config=config, inputs=given, timeout=60, connect_timeout=60)
    json.dump({k: v.tolist() for k, v in result.items()}, open(out, "w"))
    """
)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def certs_for(tmp_path, veil_bin):
    """`veil certs` for client and server on two consecutive free ports."""
    for _ in range(20):
        port = free_port()
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + 1))
            break
        except OSError:
            continue
    certs = tmp_path / "certs"
    subprocess.run(
        [veil_bin, "certs", "--out", str(certs), "--base-port", str(port), "client", "server"],
        check=True,
        capture_output=True,
    )
    return certs / "parties.toml"


def expect(got, x, w, b):
    m = veil.compile(source=SOURCE, dealer=False)
    checked = m.run({"x": x, "w": w, "b": b}, check=True)
    assert got.shape == (x.shape[0],)
    assert np.max(np.abs(got - checked.reference["p"])) <= m.outputs["p"][2]


def test_two_parties_in_two_processes(tmp_path, veil_bin):
    config = certs_for(tmp_path, veil_bin)
    source = tmp_path / "two.veil"
    source.write_text(SOURCE)
    rng = np.random.default_rng()
    x = rng.uniform(-2, 2, size=(7, 6))
    w, b = rng.uniform(-1, 1, size=6), rng.uniform(-1, 1)
    script = tmp_path / "party.py"
    script.write_text(PARTY)
    procs = []
    for me, given in [("server", {"w": w.tolist(), "b": b}), ("client", {"x": x.tolist()})]:
        f = tmp_path / f"{me}-in.json"
        f.write_text(json.dumps(given))
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    str(script),
                    str(source),
                    me,
                    str(config),
                    str(f),
                    str(tmp_path / f"{me}-out.json"),
                ],
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    client = json.loads((tmp_path / "client-out.json").read_text())
    server = json.loads((tmp_path / "server-out.json").read_text())
    assert server == {}
    expect(np.asarray(client["p"]), x, w, b)


def test_a_python_party_runs_with_a_command_line_party(tmp_path, veil_bin):
    # The server is `veil party`, reading no rows; the client, in Python,
    # has 9 rows and asks for chunks of 4: three chunks in one session.
    config = certs_for(tmp_path, veil_bin)
    source = tmp_path / "two.veil"
    source.write_text(SOURCE)
    rng = np.random.default_rng()
    x = rng.uniform(-2, 2, size=(9, 6))
    w, b = rng.uniform(-1, 1, size=6), rng.uniform(-1, 1)
    (tmp_path / "w.json").write_text(json.dumps(w.tolist()))
    (tmp_path / "b.json").write_text(json.dumps(b))
    server = subprocess.Popen(
        [veil_bin, "party", str(source), "--as", "server", "--config", str(config), "--no-dealer",
         "-i", f"w={tmp_path / 'w.json'}", "-i", f"b={tmp_path / 'b.json'}", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        m = veil.compile(str(source), dealer=False)
        got = veil.party(m, as_="client", config=str(config), inputs={"x": x}, chunk_rows=4)
    finally:
        _, err = server.communicate(timeout=300)
    assert server.returncode == 0, err
    expect(got["p"], x, w, b)
