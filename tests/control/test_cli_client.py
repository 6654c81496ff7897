"""The CLI client, as a user runs it: `gigafactory submit/queue/status/logs/cancel/usage/nodes/admin` in processes of
their own, over HTTP, against a running server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx

from gigafactory.control.client import Client

from .conftest import LiveServer


def gf(live: LiveServer, *args: str, token: str | None = None, columns: int = 200) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": str(columns), "GIGAFACTORY_TOKEN": token or live.plane.admin_token}
    return subprocess.run(
        [sys.executable, "-m", "gigafactory", *args, "--url", live.url] if args[0] != "submit" else
        [sys.executable, "-m", "gigafactory", "submit", "--url", live.url, *args[1:]],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip


def test_submit_watch_and_read_a_job(live: LiveServer) -> None:
    tok = live.plane.tokens["lab-a"]
    cmd = ["sh", "-c", "echo hi $CUDA_VISIBLE_DEVICES"]
    r = gf(live, "submit", "--gpus", "2", "--name", "hello", "--time", "5m", "--", *cmd, token=tok)
    assert r.returncode == 0, r.stderr
    jid = int(r.stdout.split()[-1])
    with Client(live.url, tok) as c:
        deadline = time.monotonic() + 30
        while c.job(jid)["state"] != "completed":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        gpus = c.job(jid)["gpus_placed"][0]
    out = gf(live, "logs", str(jid), token=tok)
    assert out.returncode == 0 and out.stdout == f"hi {','.join(map(str, gpus))}\n"
    st = gf(live, "status", str(jid), token=tok)
    assert st.returncode == 0 and "completed" in st.stdout and "pending -> running" in st.stdout
    use = gf(live, "usage", token=tok)
    assert use.returncode == 0 and "lab-a" in use.stdout and "startup-b" not in use.stdout
    link = gf(live, "sign-in", token=tok)  # a one-time dashboard link for this tenant
    assert link.returncode == 0 and link.stdout.startswith(f"{live.url}/login?code=gfc_"), link.stdout
    page = httpx.get(link.stdout.strip(), follow_redirects=True)
    assert page.status_code == 200 and "lab-a" in page.text


def test_queue_shows_estimated_starts_like_squeue(live: LiveServer) -> None:
    with Client(live.url, live.plane.admin_token) as c:
        big = c.submit(tenant="lab-a", command=["sleep", "20"], gpus=32, estimate_s=20)
        later = c.submit(tenant="uni-c", command=["true"], gpus=8, estimate_s=10, name="later")
        deadline = time.monotonic() + 30
        while c.job(later)["est_start"] is None or c.job(big)["state"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.1)
    q = gf(live, "queue")
    assert q.returncode == 0, q.stderr
    lines = q.stdout.splitlines()
    assert lines[0].split()[:7] == ["JOBID", "TENANT", "NAME", "GPUS", "STATE", "POS", "START_TIME"]
    row = next(line for line in lines if line.split()[0] == str(later))
    assert row.split()[4:6] == ["PENDING", "1"] and row.split()[6].count(":") == 2  # position 1, a time today
    assert row.split()[7] == "(Resources)"
    # On an 80-column terminal nothing is cut: long values fold onto a second line instead.
    narrow = gf(live, "queue", columns=80).stdout
    assert "…" not in narrow and max(map(len, narrow.splitlines())) <= 80
    assert "later" in narrow and "(Resources)" in narrow
    cancel = gf(live, "cancel", str(big), token=live.plane.tokens["lab-a"])
    assert cancel.returncode == 0
    other = gf(live, "cancel", str(later), token=live.plane.tokens["lab-a"])
    assert other.returncode != 0 and "no job" in other.stderr  # another tenant's job does not exist for lab-a


def test_admin_commands_and_errors(live: LiveServer) -> None:
    r = gf(live, "admin", "tenant", "new-lab", "--share", "3")
    assert r.returncode == 0 and "share 3" in r.stdout
    tok = gf(live, "admin", "token", "--tenant", "new-lab").stdout.strip()
    assert tok.startswith("gf_")
    who = gf(live, "nodes", token=tok)
    assert who.returncode == 0 and "u00000" in who.stdout
    assert gf(live, "admin", "drain", "u00001", "--reason", "bad fan").returncode == 0
    with Client(live.url, live.plane.admin_token) as c:
        deadline = time.monotonic() + 20
        while c.nodes(["drained"]) == []:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    drained = gf(live, "nodes", "--state", "drained").stdout.splitlines()
    assert [line.split()[0] for line in drained[1:]] == ["u00001"] and "bad fan" in drained[1]
    bad = gf(live, "admin", "drain", "u00001", token=tok)
    assert bad.returncode != 0 and "admin token" in bad.stderr and "Traceback" not in bad.stderr
    # Bad input: a clear one-line error and a non-zero exit, no traceback.
    for args, words in [
        (("submit", "--gpus", "0", "--", "true"), "--gpus 0"),
        (("submit", "--gpus", "1.5", "--tenant", "lab-a", "--", "true"), "fraction below 1"),
        (("submit", "--gpus", "0.0001", "--tenant", "lab-a", "--", "true"), "counted in thousandths"),
        (("submit", "--gpus", "0.2505", "--tenant", "lab-a", "--", "true"), "--gpus 0.2505"),
        (("submit", "--gpus", "999", "--tenant", "lab-a", "--", "true"), "it asks for 999 GPUs; the site has 32"),
        (("submit", "--tenant", "nobody", "--", "true"), "unknown tenant 'nobody'"),
        (("status", "12345"), "no job 12345"),
    ]:
        r = gf(live, *args)
        assert r.returncode != 0 and words in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
    down = subprocess.run([sys.executable, "-m", "gigafactory", "queue", "--url", "http://127.0.0.1:9"],
                          capture_output=True, text=True, env={**os.environ, "GIGAFACTORY_TOKEN": "x"})  # fmt: skip
    assert down.returncode != 0 and "cannot reach" in down.stderr


def test_serve_refuses_bad_set_ups_clearly(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SLURM_CONF"}
    cases = [
        (["--executor", "slurm"], "SLURM_CONF"),  # with Slurm installed ("is not set") or without ("not found")
        (["--site", "nosuch:nodes=3"], "unknown site preset 'nosuch'"),
        (["--policy", "fifo+nope"], "unknown policy 'nope'"),
        (["--db", "mysql://x/y"], "only sqlite:///PATH and postgresql+psycopg://"),
        (["--executor", "k8s"], "executor 'k8s'"),
    ]
    for i, (args, words) in enumerate(cases):
        r = subprocess.run([sys.executable, "-m", "gigafactory", "serve", "--data-dir", str(tmp_path / str(i)), *args],
                           capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
        assert r.returncode != 0 and words in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        r = subprocess.run([sys.executable, "-m", "gigafactory", "serve", "--data-dir", str(tmp_path / "p"), "--port",
                            port], capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert r.returncode != 0 and f"cannot listen on 127.0.0.1:{port}" in r.stderr, r.stderr


def test_the_network_from_the_command_line(live_network: LiveServer) -> None:
    live = live_network
    tok = live.plane.tokens["lab-a"]
    r = gf(live, "submit", "--countries", "fr", "--gpus", "8", "--", "sleep", "600", token=tok)
    assert r.returncode == 0, r.stderr
    jid = int(r.stdout.split()[-1])
    pinned = int(gf(live, "submit", "--site", "de-1", "--", "sleep", "600", token=tok).stdout.split()[-1])
    with Client(live.url, tok) as c:
        deadline = time.monotonic() + 30
        while c.job(jid)["state"] != "running" or c.job(pinned)["state"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.1)
    sites = gf(live, "sites", token=tok)
    assert sites.returncode == 0
    lines = {ln.split()[0]: ln.split() for ln in sites.stdout.splitlines()[1:] if ln.strip()}
    assert lines["fr-1"][1:4] == ["FR", "16", "8"] and lines["de-1"][1:4] == ["DE", "16", "1"]
    q = gf(live, "queue", "--site", "fr-1", token=tok)
    listed = [ln.split()[0] for ln in q.stdout.splitlines()[1:] if ln.strip()]
    assert q.returncode == 0 and listed == [str(jid)] and "fr-1" in q.stdout
    st = gf(live, "status", str(jid), token=tok)
    assert "fr-1   may run in FR" in st.stdout and "routed to fr-1" in st.stdout
    nodes = gf(live, "nodes", "--site", "de-1", token=tok)
    assert nodes.returncode == 0 and len(nodes.stdout.splitlines()) == 3  # header and two nodes
    for bad, message in (
        (["submit", "--countries", ",", "--", "true"], "--countries ',': give ISO codes"),
        (["submit", "--site", "mars", "--", "true"], "unknown site 'mars'"),
        (["queue", "--site", "mars"], "no site 'mars'"),
    ):
        r = gf(live, *bad, token=tok)
        assert r.returncode != 0 and message in r.stderr, (bad, r.stderr)
    with Client(live.url, live.plane.admin_token) as c:
        c.cancel(jid)
        c.cancel(pinned)


def test_the_programme_and_the_desk_from_the_command_line(live: LiveServer) -> None:
    tok = live.plane.tokens["startup-b"]
    assert gf(live, "admin", "token", "--reviewer", "--name", "anna").returncode == 0
    r = gf(live, "programme", "open-call", "Fast lane", "--mode", "fast-lane", "--budget", "100", "--closes", "+30d",
           "--reviewer", "anna")  # fmt: skip
    assert r.returncode == 0, r.stderr
    call = r.stdout.strip()
    r = gf(live, "programme", "apply", call, "--title", "7B", "--gpu-hours", "40", "--country", "fr", token=tok)
    assert r.returncode == 0, r.stderr
    r = gf(live, "programme", "award", r.stdout.strip(), "--gpu-hours", "30")
    assert r.returncode == 0 and "30 GPU-hours for startup-b" in r.stdout, r.stderr
    r = gf(live, "programme", "awards", token=tok)
    assert "startup-b" in r.stdout and "active" in r.stdout
    assert gf(live, "programme", "contribute", "1", "--eur", "nan").returncode == 2  # a clear error, no traceback
    r = gf(live, "programme", "report", "--by", "organisation", "--csv", token=tok)
    assert r.returncode == 0 and r.stdout.startswith("key,label,gpu_hours")
    # The desk: a model, a planned run over 10^25, its ledger with the clock, its Annex XI skeleton.
    r = gf(live, "desk", "model-add", "EuroLM", "--provider", "Startup B", "--generative", token=tok)
    assert r.returncode == 0, r.stderr
    model = r.stdout.strip()
    r = gf(live, "desk", "run-add", model, "--purpose", "pre-training", "--planned", "H100=8e6", token=tok)
    assert r.returncode == 0, r.stderr
    r = gf(live, "desk", "ledger", model, token=tok)
    assert r.returncode == 0 and "NOTIFY (Art. 52(1)) by" in r.stdout and "foreseeable" in r.stdout, r.stdout
    r = gf(live, "desk", "dry-run", model, "--site", "hgx-h100:nodes=16", "--gpus", "64", "--hours", "48", token=tok)
    assert r.returncode == 0 and "dry run through the twin: 64 GPUs × 48 h" in r.stdout, r.stderr
    r = gf(live, "desk", "ledger", model, "--json", token=tok)
    planned = [x for x in json.loads(r.stdout)["runs"] if "dry run" in x["note"]]
    assert len(planned) == 1 and planned[0]["planned"] and planned[0]["flop"] > 64 * 48 * 3600 * 989e12 * 0.35
    r = gf(live, "desk", "document", model, token=tok)
    assert r.returncode == 0 and r.stdout.startswith("# Technical documentation: EuroLM")
    assert gf(live, "desk", "ledger", model, token=live.plane.tokens["lab-a"]).returncode == 2  # not theirs
    r = gf(live, "desk", "run-add", model, "--purpose", "pre-training", "--planned", "T4=10", token=tok)
    assert r.returncode == 2 and "peak FLOP/s is not known" in r.stderr


def test_jobs_history_and_hostlists_on_the_command_line(live: LiveServer) -> None:
    """`gigafactory jobs` lists ended jobs too (like sacct), newest first, with their nodes as a hostlist; node
    commands take hostlists."""
    with Client(live.url, live.plane.admin_token) as c:
        done = c.submit(tenant="lab-a", name="two-nodes", command=["true"], gpus=16)
        other = c.submit(tenant="uni-c", name="elsewhere", command=["true"], gpus=1)
        deadline = time.monotonic() + 30
        while {c.job(done)["state"], c.job(other)["state"]} != {"completed"}:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        nodelist = c.job(done)["nodelist"]
    assert nodelist.startswith("u[") or nodelist.count(",") == 1  # two nodes, one short string
    r = gf(live, "jobs", "--state", "completed", "--search", "two-nodes", token=live.plane.tokens["lab-a"])
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines()[1:] if line.strip() and line.split()[0].isdigit()]
    assert [row[0] for row in rows] == [str(done)] and rows[0][-1] == nodelist
    assert "elsewhere" not in gf(live, "jobs", token=live.plane.tokens["lab-a"]).stdout  # uni-c's
    bad = gf(live, "jobs", "--since", "yesterday")
    assert bad.returncode != 0 and "--since 'yesterday'" in bad.stdout + bad.stderr
    r = gf(live, "nodes", "--nodelist", "u[00001-00002]")
    assert r.returncode == 0 and "u00001" in r.stdout and "u00002" in r.stdout and "u00000" not in r.stdout
    r = gf(live, "admin", "drain", "u[00002-00003]", "--reason", "rewiring")
    assert r.returncode == 0, r.stderr
    r = gf(live, "nodes", "--nodelist", "u[00002-1]")
    assert r.returncode != 0 and "runs backwards" in r.stdout + r.stderr
