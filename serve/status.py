"""The routes that say what the server is and holds: /health, /ready, /models, /model,
/languages, /metrics, and the web page at / with its files.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import FileResponse, JSONResponse

from serve import libretranslate
from serve.errors import error_body
from serve.metrics import Metrics
from serve.registry import Registry
from serve.routes import ERRORS, RegistryDep
from serve.schemas import ModelInfo, Status

STATIC = resources.files("serve") / "static"
VIEWER = resources.files("seq2seq")
"""Where the viewer of an inspection lives (`seq2seq inspect --out page.html` inlines it)."""
router = APIRouter()


@router.get("/health", response_model=Status, response_model_exclude_none=True)
async def health() -> Status:
    """The process is alive."""
    return Status(status="ok")


@router.get(
    "/ready",
    response_model=Status,
    response_model_exclude_none=True,
    responses={503: {"model": Status}},
)
async def ready(request: Request) -> Any:
    """Some model can serve: 200, naming those that cannot (failed, or an inference process
    starting again); 503 while none can or the models are not open yet."""
    registry: Registry | None = getattr(request.app.state, "registry", None)
    if registry is None or not registry.started:
        body = {"status": "loading", **error_body("models not loaded", "models not loaded")}
        return JSONResponse(body, status_code=503)
    down = [
        model.id
        for model in registry.models
        if model.state == "failed" or (model.batcher is not None and not model.batcher.alive)
    ]
    if len(down) == len(registry.models):
        reason = f"no model can serve now: {', '.join(down)} (restarting or failed)"
        return JSONResponse({"status": "restarting", **error_body(reason, reason)}, 503)
    return Status(status="ready", unavailable=down or None)


@router.get("/models", response_model=list[ModelInfo], responses={503: ERRORS[503]})
async def models(registry: RegistryDep) -> list[ModelInfo]:
    """Every model: its pair, file, parameters, device, precision, state, validation BLEU."""
    return [ModelInfo(**model.describe()) for model in registry.models]


@router.get("/model", responses={404: ERRORS[422] | {"description": "Several models"}})
async def model(registry: RegistryDep) -> dict[str, Any]:
    """The model of a one-model server: languages, sizes, parameters, device, metadata."""
    if len(registry.models) > 1:
        raise HTTPException(404, f"this server holds {len(registry.models)} models: see /models")
    only = registry.models[0]
    return {"id": only.id, **only.codec.info(), **only.decoding, "state": only.state}


@router.get("/languages", response_model=list[libretranslate.Language])
async def languages(registry: RegistryDep) -> list[libretranslate.Language]:
    """LibreTranslate's language list: every language with the targets it translates into,
    directly or through a pivot."""
    codes = sorted({code for pair in registry.by_pair for code in pair})
    return [libretranslate.language(code, registry.targets(code)) for code in codes]


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus text format."""
    registry: Metrics = request.app.state.metrics
    payload, content_type = registry.render()
    return Response(payload, media_type=content_type)


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    """The web page: languages, a text box, a button, the translation, and inside the model."""
    return FileResponse(str(STATIC / "index.html"), media_type="text/html")


@router.get("/viewer/{name}", include_in_schema=False)
async def viewer(name: str) -> FileResponse:
    """The inspection viewer's script and style, shared with `seq2seq inspect`'s report."""
    kinds = {"inspect_view.js": "text/javascript", "inspect_view.css": "text/css"}
    if name not in kinds:
        raise HTTPException(404, "Not Found")
    return FileResponse(str(VIEWER / name), media_type=kinds[name])
