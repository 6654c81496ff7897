"""The AI Act desk's ledger on the live control plane: jobs run by the local executor land in a model's ledger with
the GPU-seconds the accounting billed; excluded purposes never count; clocks and drafts; tenants see only theirs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, func, select

from gigafactory.control.api.app import create_app
from gigafactory.control.store.schema import usage

from .conftest import make_plane, run_until

API = "/api/v1"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def billed_gpu_s(conn: Connection, job_id: int) -> float:
    """The GPU-seconds the accounting billed the job (it has been billed: the sum is not NULL)."""
    billed = conn.execute(select(func.sum(usage.c.gpu_seconds)).where(usage.c.job_id == job_id)).scalar()
    assert billed is not None
    return float(billed)


def test_jobs_land_in_the_ledger_with_their_gpu_seconds(tmp_path: Path) -> None:
    plane = make_plane(tmp_path / "gf", site="hgx-h100:nodes=2")
    own, other = bearer(plane.tokens["lab-a"]), bearer(plane.tokens["startup-b"])
    daemon = plane.daemon(forecast_every_s=1e9)
    with TestClient(create_app(plane.cfg, plane.store)) as client:
        r = client.post(f"{API}/desk/models", json={"name": "EuroLM-7B", "provider": "Lab A", "generative": True},
                        headers=own)  # fmt: skip
        assert r.status_code == 201, r.text
        model = r.json()["id"]
        train = client.post(f"{API}/jobs", json={"command": ["sleep", "1"], "gpus": 4}, headers=own).json()["ids"][0]
        evals = client.post(f"{API}/jobs", json={"command": ["sleep", "1"], "gpus": 2}, headers=own).json()["ids"][0]
        theirs = client.post(f"{API}/jobs", json={"command": ["true"], "gpus": 1}, headers=other).json()["ids"][0]
        run_until(daemon, lambda: all(client.get(f"{API}/jobs/{j}", headers=own).json()["state"] == "completed"
                                      for j in (train, evals)))  # fmt: skip
        for purpose, jobs in (("pre-training", [train]), ("evaluation", [evals])):
            r = client.post(f"{API}/desk/models/{model}/runs", json={"purpose": purpose, "jobs": jobs}, headers=own)
            assert r.status_code == 201, r.text
        # Another tenant's job cannot be put in one's ledger, and another tenant cannot see the model.
        r = client.post(f"{API}/desk/models/{model}/runs", json={"purpose": "pre-training", "jobs": [theirs]},
                        headers=own)  # fmt: skip
        assert r.status_code == 422 and f"job {theirs} is not one of lab-a's jobs" in r.text
        assert client.get(f"{API}/desk/models/{model}", headers=other).status_code == 404
        assert client.get(f"{API}/desk/models", headers=other).json() == []
        led = client.get(f"{API}/desk/models/{model}", headers=own).json()
        with plane.store.connect() as conn:
            billed = {j: billed_gpu_s(conn, j) for j in (train, evals)}
        assert billed[train] == pytest.approx(4 * 1.0, abs=2.0)  # 4 GPUs for about a second
        # Counted: the pre-training run alone, at its billed GPU-seconds × the H100's 989 TFLOP/s × 40% (35-45%).
        assert led["counted_flop"] == pytest.approx(billed[train] * 989e12 * 0.40)
        assert led["range_flop"] == pytest.approx([billed[train] * 989e12 * 0.35, billed[train] * 989e12 * 0.45])
        runs = {x["purpose"]: x for x in led["runs"]}
        assert runs["evaluation"]["counts"] is False
        assert runs["evaluation"]["flop"] == pytest.approx(billed[evals] * 989e12 * 0.40)
        assert led["relies_on"] == "hardware" and led["gpai"] is False and led["clock"] is None
        # A planned run that would cross 10^25 opens the clock now, due in 14 days, with a draft to send.
        r = client.post(f"{API}/desk/models/{model}/runs",
                        json={"purpose": "pre-training", "planned_gpu_hours": {"H100": 8e6}, "mfu": [0.4, 0.5]},
                        headers=own)  # fmt: skip
        assert r.status_code == 201, r.text
        led = client.get(f"{API}/desk/models/{model}", headers=own).json()
        assert led["systemic_risk"] is False and led["systemic_risk_foreseeable"] is True
        opened = led["clock"]["opened_at"]
        assert led["clock"]["due_at"] == pytest.approx(opened + 14 * 86_400) and led["clock"]["why"] == "foreseeable"
        assert "Article 52(1)" in led["draft"] and "×10^25" in led["draft"] and "run 2 (evaluation)" in led["draft"]
        time.sleep(0.01)
        assert client.get(f"{API}/desk/models/{model}", headers=own).json()["clock"]["opened_at"] == opened  # kept
        doc = client.get(f"{API}/desk/models/{model}/annex-xi", headers=own).text
        assert f"Computational resources used to train the model: {led['counted_flop_2sf']} FLOP" in doc
        assert "Energy consumption, estimated" in doc and "Section 2" in doc and "[to complete]" in doc
        assert "Training time:" in doc and led["gpu_hours"] == pytest.approx(billed[train] / 3600)
        # Energy: the H100's 1,275 W per GPU (DGX) × PUE 1.3 (no figure of the site's own).
        assert led["energy_mwh"] == pytest.approx(billed[train] / 3600 * 1275 * 1.3 / 1e6)
        page = client.get(f"{API}/desk/models/{model}/summary", params={"format": "html"}, headers=own)
        assert page.status_code == 200 and "<h1>" in page.text and "two weeks" in page.text
        assert client.get(f"{API}/desk/models/{model}/summary", headers=other).status_code == 404
        # A job's GPU time counts once; a run recorded by mistake can be taken out.
        r = client.post(f"{API}/desk/models/{model}/runs", json={"purpose": "further-training", "jobs": [train]},
                        headers=own)  # fmt: skip
        assert r.status_code == 409 and f"job {train} is already in run 1" in r.text
        assert client.delete(f"{API}/desk/models/{model}/runs/2", headers=other).status_code == 404
        r = client.post(f"{API}/desk/models/{model}/notified", json={"note": "sent to the AI Office"}, headers=own)
        assert r.status_code == 200 and r.json()["clock"] is None and r.json()["notified_at"] is not None
        r = client.post(f"{API}/desk/models/{model}/notified", json={"note": "update"}, headers=own)
        assert r.json()["notification_note"].splitlines()[0].endswith("sent to the AI Office")  # kept, not overwritten
        # Bad input names what was wrong.
        for body, says in (({"purpose": "pre-training", "planned_gpu_hours": {"T4": 10}}, "peak FLOP/s is not known"),
                           ({"purpose": "lunch", "jobs": [train]}, "purpose"),
                           ({"purpose": "pre-training", "parameters": 7e9}, "needs both"),
                           ({"purpose": "pre-training", "tokens": -5, "parameters": 1}, "tokens"),
                           ({"purpose": "pre-training"}, "a run needs jobs")):  # fmt: skip
            r = client.post(f"{API}/desk/models/{model}/runs", json=body, headers=own)
            assert r.status_code == 422 and says in r.text, (body, r.text)
        r = client.post(f"{API}/desk/thresholds", json={"flop": 1.0000001e25, "generative": True}, headers=other)
        assert r.json()["systemic_risk"] is True
        r = client.post(f"{API}/desk/classify", json={"answers": {"role": "provider"}}, headers=other)
        assert r.status_code == 422 and "answers.practices: missing" in r.text
    plane.store.dispose()


def test_the_desk_pages(tmp_path: Path) -> None:
    from .test_api import browser_as

    plane = make_plane(tmp_path / "gf")
    with TestClient(create_app(plane.cfg, plane.store)) as client:
        own = bearer(plane.tokens["lab-a"])
        model = client.post(f"{API}/desk/models", json={"name": "M<script>", "provider": "A", "generative": True},
                            headers=own).json()["id"]  # fmt: skip
        client.post(f"{API}/desk/models/{model}/runs",
                    json={"purpose": "pre-training", "planned_gpu_hours": {"H100": 8e6}}, headers=own)  # fmt: skip
        browser_as(client, plane.tokens["lab-a"])
        page = client.get("/desk").text
        assert (
            f'data-model="{model}"' in page and "M&lt;script&gt;" in page and "<script>" not in page.split("<body")[1]
        )
        detail = client.get(f"/desk/models/{model}").text
        assert 'id="clock"' in detail and 'id="draft"' in detail and "Article 52(1)" in detail
        browser_as(client, plane.tokens["startup-b"])
        assert f'data-model="{model}"' not in client.get("/desk").text
        assert client.get(f"/desk/models/{model}").status_code == 404
        form = client.get("/desk/classify").text
        assert 'name="practices"' in form and 'name="annex_iii"' in form
        answers = ("role=provider&annex_i_product=no&annex_iii=4a&profiling=yes&significant_risk=no&derogation=d"
                   "&transparency=interacts&calendar=omnibus")  # fmt: skip
        r = client.post(
            "/desk/classify", content=answers, headers={"content-type": "application/x-www-form-urlencoded"}
        )
        assert r.status_code == 200 and "<h2>high-risk</h2>" in r.text and "2027-12-02" in r.text
        urlencoded = {"content-type": "application/x-www-form-urlencoded"}
        none = ("role=provider&annex_i_product=no&annex_iii=5b&profiling=no&derogation=none&transparency=none"
                "&calendar=omnibus")  # fmt: skip
        r = client.post("/desk/classify", content=none, headers=urlencoded)
        assert "<h2>high-risk</h2>" in r.text and 'value="omnibus" selected' in r.text  # no 6(3) condition met
        r = client.post("/desk/classify", content="role=provider", headers=urlencoded)
        assert 'id="error"' in r.text and "answers.annex_i_product: missing" in r.text
    plane.store.dispose()


def test_jobs_that_name_their_model_reach_the_ledger_and_the_engines_hold(tmp_path: Path) -> None:
    plane = make_plane(tmp_path / "gf", site="hgx-h100:nodes=2")
    own, other = bearer(plane.tokens["lab-a"]), bearer(plane.tokens["startup-b"])
    daemon = plane.daemon(profile="fifo+easy+best-fit+award:ai_act=1", forecast_every_s=1e9)
    with TestClient(create_app(plane.cfg, plane.store)) as client:
        model = client.post(f"{API}/desk/models", json={"name": "M", "provider": "A", "generative": True},
                            headers=own).json()["id"]  # fmt: skip
        r = client.post(f"{API}/jobs", json={"command": ["sleep", "1"], "gpus": 2, "model": model}, headers=own)
        assert r.status_code == 201, r.text
        train = r.json()["ids"][0]
        evals = client.post(f"{API}/jobs", json={"command": ["true"], "gpus": 1, "model": model,
                                                 "purpose": "evaluation"}, headers=own).json()["ids"][0]  # fmt: skip
        r = client.post(f"{API}/jobs", json={"command": ["true"], "gpus": 1, "model": model}, headers=other)
        assert r.status_code == 422 and f"startup-b keeps no model {model}" in r.text
        assert client.get(f"{API}/jobs/{train}", headers=own).json()["model"] == model

        def done() -> bool:
            return all(
                client.get(f"{API}/jobs/{j}", headers=own).json()["state"] == "completed" for j in (train, evals)
            )

        run_until(daemon, done)
        run_until(daemon, lambda: daemon.engine.models.get(model) is not None
                  and daemon.engine.models[model].counted_flop > 0)  # fmt: skip
        with plane.store.connect() as conn:
            billed = billed_gpu_s(conn, train)
        # The engine projects high: the upper end of the utilisation range (45%) at the H100's peak.
        assert daemon.engine.models[model].counted_flop == pytest.approx(billed * 989e12 * 0.45)
        assert daemon.engine.models[model].flop_per_gpu_s == pytest.approx(989e12 * 0.45)
        led = client.get(f"{API}/desk/models/{model}", headers=own).json()
        runs = {x["purpose"]: x for x in led["runs"]}
        assert runs["pre-training"]["label"] == "jobs submitted for it (1)" and runs["evaluation"]["counts"] is False
        assert led["counted_flop"] == pytest.approx(billed * 989e12 * 0.40)
        client.post(f"{API}/desk/models/{model}/notified", json={}, headers=own)
        run_until(daemon, lambda: daemon.engine.models[model].notified)
    plane.store.dispose()
