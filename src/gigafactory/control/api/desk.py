"""The AI Act desk's API: a tenant's models and their compute ledgers (tenant-scoped like the rest: another
tenant's model is a 404), and the desk's rules for anyone signed in (thresholds, modification, risk classifier)."""

import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, PlainTextResponse
from pydantic import Field, StringConstraints
from sqlalchemy import Engine as Store

from gigafactory.control.api.errors import ApiError
from gigafactory.control.api.models import Name, Text, _Strict
from gigafactory.control.store import accounts, inbox
from gigafactory.control.store import desk as deskstore
from gigafactory.control.store.programme import ProgrammeError
from gigafactory.core.errors import RequestError
from gigafactory.desk.annex_xi import annex_xi, summary, to_html
from gigafactory.desk.classify import classify
from gigafactory.desk.compute import Purpose
from gigafactory.desk.thresholds import MAX_FLOP, modification, sig2, thresholds

__all__ = ["desk_router"]

Line = Annotated[Text, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")]
Flop = Annotated[float, Field(ge=0, le=MAX_FLOP)]
ModelId = Annotated[int, PathParam(ge=1, le=2**62)]
PurposeName = Literal[tuple(p.value for p in Purpose)]  # type: ignore[valid-type]


class ModelIn(_Strict):
    name: Line
    provider: Line
    generative: bool = Field(description="It generates text, code, speech, images or video (the GPAI criterion).")
    tenant: Name | None = Field(None, description="Whose model (an admin must say; a tenant's token: its own).")
    modifies: Line | None = Field(None, description="The original model's name, for a modification.")
    original_flop: Annotated[float, Field(ge=1, le=MAX_FLOP)] | None = Field(
        None, description="The original's training compute, if known."
    )
    original_systemic: bool = Field(False, description="The original (compute unknown) has systemic risk.")


class RunIn(_Strict):
    purpose: PurposeName  # type: ignore[valid-type]
    jobs: list[Annotated[int, Field(ge=1, le=2**62)]] = Field(default_factory=list, max_length=10_000)
    planned_gpu_hours: dict[
        Annotated[str, StringConstraints(max_length=64)], Annotated[float, Field(gt=0, le=1e11)]
    ] = Field(default_factory=dict, max_length=16, description="A planned run: GPU-hours per GPU model (a dry run).")
    parameters: Annotated[float, Field(gt=0, le=1e15)] | None = None
    tokens: Annotated[float, Field(gt=0, le=1e17)] | None = None
    mfu: tuple[Annotated[float, Field(gt=0, le=1)], Annotated[float, Field(gt=0, le=1)]] = (0.35, 0.45)
    note: Annotated[Text, StringConstraints(max_length=2000)] = ""


class NotifiedIn(_Strict):
    at: Annotated[float, Field(ge=0, le=1e11)] | None = None
    note: Annotated[Text, StringConstraints(max_length=5000)] = ""


class ThresholdsIn(_Strict):
    flop: Flop
    generative: bool = False


class ModificationIn(_Strict):
    added_flop: Flop
    original_flop: Annotated[float, Field(ge=1, le=MAX_FLOP)] | None = None
    original_systemic: bool = False


def desk_router(store: Store, who: Any, tenant_exists: Callable[[str], bool]) -> APIRouter:
    r = APIRouter()
    Who = Annotated[accounts.Principal, Depends(who)]  # noqa: N806  (a type, as in app.py)

    def scope(p: accounts.Principal) -> str | None:
        return None if p.admin else p.tenant

    def fail(exc: ProgrammeError, where: str = "body") -> ApiError:
        return ApiError(exc.status, str(exc), f"{where}.{exc.field}" if exc.field else None)

    @r.get("/desk/models", tags=["desk"])
    def list_models(p: Who) -> list[dict[str, Any]]:
        with store.connect() as conn:
            return [dict(m._mapping) for m in deskstore.visible_models(conn, scope(p))]

    @r.post("/desk/models", status_code=201, tags=["desk"])
    def add_model(body: ModelIn, p: Who) -> dict[str, Any]:
        if p.role == "reviewer":
            raise ApiError(403, "a reviewer token keeps no models")
        tenant = body.tenant if p.admin else p.tenant
        if not p.admin and body.tenant not in (None, p.tenant):
            raise ApiError(403, f"body.tenant: this token keeps models only for {p.tenant!r}", "body.tenant")
        if tenant is None or not tenant_exists(tenant):
            raise ApiError(422, f"body.tenant: name a known tenant (got {tenant!r})", "body.tenant")
        try:
            with store.begin() as conn:
                mid = deskstore.add_model(conn, tenant, name=body.name, provider=body.provider,
                                          generative=body.generative, modifies=body.modifies,
                                          original_flop=body.original_flop,
                                          original_systemic=body.original_systemic)  # fmt: skip
                inbox.append(conn, "desk")
        except ProgrammeError as exc:
            raise fail(exc) from exc
        return {"id": mid}

    @r.get("/desk/models/{model_id}", tags=["desk"])
    def get_ledger(model_id: ModelId, p: Who) -> dict[str, Any]:
        """The model's compute ledger: runs, estimates, what counts, thresholds, the notification clock and draft."""
        try:
            with store.begin() as conn:
                return deskstore.model_ledger(conn, model_id, scope(p))
        except ProgrammeError as exc:
            raise fail(exc, "path" if exc.field == "model_id" else "body") from exc

    @r.post("/desk/models/{model_id}/runs", status_code=201, tags=["desk"])
    def add_run(model_id: ModelId, body: RunIn, p: Who) -> dict[str, Any]:
        try:
            with store.begin() as conn:
                rid = deskstore.add_run(conn, model_id, scope(p), purpose=body.purpose, job_ids=body.jobs,
                                        planned_gpu_hours=body.planned_gpu_hours, parameters=body.parameters,
                                        tokens=body.tokens, mfu=body.mfu, note=body.note)  # fmt: skip
                inbox.append(conn, "desk")
        except ProgrammeError as exc:
            raise fail(exc, "path" if exc.field == "model_id" else "body") from exc
        return {"id": rid}

    @r.delete("/desk/models/{model_id}/runs/{run_id}", status_code=204, tags=["desk"])
    def remove_run(model_id: ModelId, run_id: ModelId, p: Who) -> Response:
        try:
            with store.begin() as conn:
                deskstore.remove_run(conn, model_id, run_id, scope(p))
                inbox.append(conn, "desk")
        except ProgrammeError as exc:
            raise fail(exc, "path") from exc
        return Response(status_code=204)

    @r.post("/desk/models/{model_id}/notified", tags=["desk"])
    def notified(model_id: ModelId, body: NotifiedIn, p: Who) -> dict[str, Any]:
        """Record that the provider notified the Commission (Art. 52(1)): the clock closes."""
        if body.at is not None and body.at > time.time() + 60:
            raise ApiError(422, "body.at: a notification is recorded once it has been made, not before", "body.at")
        try:
            with store.begin() as conn:
                deskstore.notified(conn, model_id, scope(p), body.at, body.note)
                inbox.append(conn, "desk")
        except ProgrammeError as exc:
            raise fail(exc, "path") from exc
        return get_ledger(model_id, p)

    @r.get("/desk/models/{model_id}/{document}", tags=["desk"])
    def document(
        model_id: ModelId,
        document: Literal["annex-xi", "summary"],
        p: Who,
        format: Annotated[Literal["md", "html"], Query()] = "md",
    ) -> Response:
        """The Annex XI technical-documentation skeleton, or the plain-language summary, from the ledger."""
        led = get_ledger(model_id, p)
        text = annex_xi(led) if document == "annex-xi" else summary(led)
        if format == "html":
            return HTMLResponse(to_html(text, f"{led['name']}: {document}"))
        return PlainTextResponse(text, media_type="text/markdown")

    @r.post("/desk/thresholds", tags=["desk"])
    def check_thresholds(body: ThresholdsIn, _: Who) -> dict[str, Any]:
        v = thresholds(body.flop, body.generative)
        return {"flop": body.flop, "flop_2sf": sig2(body.flop), "gpai": v["gpai"].value, "gpai_rule": v["gpai"].rule,
                "systemic_risk": v["systemic_risk"].value, "systemic_risk_rule": v["systemic_risk"].rule}  # fmt: skip

    @r.post("/desk/modification", tags=["desk"])
    def check_modification(body: ModificationIn, _: Who) -> dict[str, Any]:
        return modification(body.added_flop, body.original_flop, body.original_systemic)

    @r.post("/desk/classify", tags=["desk"])
    def classify_system(
        body: dict[str, Any], _: Who, calendar: Annotated[Literal["original", "omnibus"] | None, Query()] = None
    ) -> dict[str, Any]:
        """Classify an AI system from questionnaire answers (docs/desk/answers.schema.json)."""
        try:
            return classify(body, calendar)
        except RequestError as exc:
            raise ApiError(422, f"body.{exc}" if str(exc).startswith("answers.") else str(exc), "body") from exc

    return r
