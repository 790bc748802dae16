"""HTTP routes: /translate, /languages, /health, /ready, /model, /metrics and the page at /."""

from __future__ import annotations

import asyncio
import secrets
import time
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from starlette.status import HTTP_503_SERVICE_UNAVAILABLE

from seq2seq import TextCodec
from seq2seq.sentences import Segmented
from serve import libretranslate
from serve.batching import QueueFullError
from serve.engine import InferencePool, InferenceProcessError
from serve.errors import error_body, validation_error
from serve.markup import escape, split_html
from serve.metrics import Metrics
from serve.schemas import (
    ErrorResponse,
    ModelInfo,
    Status,
    TranslateRequest,
    TranslateResponse,
    text_problem,
)
from serve.settings import Settings
from serve.worker import AnyBatcher

STATIC = resources.files("serve") / "static"
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in {
        400: "Unsupported language pair",
        401: "API key missing",
        403: "API key wrong",
        413: "Body too large",
        415: "Body neither JSON nor a urlencoded form",
        422: "Invalid input, with the reason",
        503: "Queue full (see Retry-After) or model not loaded",
        504: "Timed out",
    }.items()
}

router = APIRouter()


# Dependencies are `async def` so FastAPI runs them inline rather than in its thread pool.


async def app_settings(request: Request) -> Settings:
    """The settings this app was created with."""
    settings: Settings = request.app.state.settings
    return settings


async def loaded_translator(request: Request) -> TextCodec:
    """The model's text side (the whole `Translator` unless child processes decode), or 503
    while none is loaded."""
    translator: TextCodec | None = getattr(request.app.state, "translator", None)
    if translator is None:
        raise HTTPException(HTTP_503_SERVICE_UNAVAILABLE, "the model is not loaded yet")
    return translator


SettingsDep = Annotated[Settings, Depends(app_settings)]
TranslatorDep = Annotated[TextCodec, Depends(loaded_translator)]


async def require_api_key(request: Request, settings: SettingsDep) -> None:
    """401 without a key, 403 with a wrong one; nothing to do when no key is configured."""
    if settings.api_key is None:
        return
    given = request.headers.get("x-api-key")
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if given is None and scheme.lower() == "bearer" and token:
        given = token.strip()
    if given is None:
        given = await _body_api_key(request)
    if not given:
        raise HTTPException(
            401,
            "API key required: send X-API-Key, Authorization: Bearer or api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not secrets.compare_digest(given.encode(), settings.api_key.get_secret_value().encode()):
        raise HTTPException(403, "API key not valid")


async def _body_api_key(request: Request) -> str | None:
    """LibreTranslate clients send the key as `api_key` in the body (JSON or form)."""
    try:
        payload = await request.json()  # already read and cached for the route's body
    except ValueError:
        return None
    key = payload.get("api_key") if isinstance(payload, dict) else None
    return key if isinstance(key, str) else None


@router.post(
    "/translate",
    response_model=TranslateResponse,
    response_model_exclude_none=True,
    responses=ERRORS,
    dependencies=[Depends(require_api_key)],
)
async def translate(
    body: TranslateRequest, request: Request, settings: SettingsDep, translator: TranslatorDep
) -> TranslateResponse:
    """Translate one text (`text`), several (`texts`) or LibreTranslate's `q`, in input order."""
    started = time.perf_counter()
    texts = body.inputs()
    field, indexed = body.input_field()
    _check_texts(texts, settings, field=field, indexed=indexed)
    _check_languages(body, translator)
    beam_size, n_best = _search(body, settings)
    candidates = await _candidates(
        request,
        translator,
        texts,
        html=body.format == "html",
        split=settings.split_sentences,
        beam_size=beam_size,
        n_best=n_best,
    )
    outputs = [ranked[0] for ranked in candidates]
    return TranslateResponse(
        translations=outputs,
        translation=outputs[0] if body.text is not None else None,
        translatedText=body.libretranslate_answer(outputs),
        alternatives=body.alternatives_answer(
            [_others(ranked, body.alternatives) for ranked in candidates]
        ),
        model=request.app.state.model_id,
        beam_size=beam_size,
        time_ms=round((time.perf_counter() - started) * 1000, 2),
    )


async def _candidates(
    request: Request,
    translator: TextCodec,
    texts: list[str],
    *,
    html: bool,
    split: bool,
    beam_size: int,
    n_best: int,
) -> list[list[str]]:
    """The `n_best` best translations of each text, best first: markup is kept apart, and
    every sentence of every text goes to the batcher as one job."""
    fragments = split_html(texts) if html else Segmented.whole(texts)
    segmented = translator.segment(fragments.sentences, split=split)
    sources = translator.encode(segmented.sentences)  # ids: the batcher counts their tokens
    tokens = sum(len(ids) for ids in sources)
    outputs = await _translate(request, sources, tokens=tokens, beam_size=beam_size, n_best=n_best)
    by_rank = [segmented.join(outputs[rank::n_best]) for rank in range(n_best)]  # [n, texts]
    joined = [fragments.join(escape(ranked) if html else ranked) for ranked in by_rank]
    return [list(per_text) for per_text in zip(*joined, strict=True)]  # [texts, n]


def _others(ranked: list[str], limit: int) -> list[str]:
    """Up to `limit` candidates after the best, each different from every one before it."""
    return list(dict.fromkeys(ranked))[1 : limit + 1]


def _search(body: TranslateRequest, settings: Settings) -> tuple[int, int]:
    """Beam size and candidates per sentence: the request's or the server's beam, widened to
    give the alternatives asked for; 422 over the configured maximum or for HTML."""
    beam_size = body.beam_size or settings.beam_size
    if beam_size > settings.max_beam_size:
        raise validation_error(
            ("body", "beam_size"),
            f"beam_size must be at most {settings.max_beam_size}",
            "too_large",
        )
    if body.alternatives and body.format == "html":
        raise validation_error(
            ("body", "alternatives"), "alternatives need format 'text'", "unsupported"
        )
    if body.alternatives >= settings.max_beam_size:
        raise validation_error(
            ("body", "alternatives"),
            f"alternatives must be at most {settings.max_beam_size - 1} (the widest beam "
            f"here is {settings.max_beam_size})",
            "too_large",
        )
    n_best = body.alternatives + 1
    return max(beam_size, n_best), n_best


def _check_texts(texts: list[str], settings: Settings, *, field: str, indexed: bool) -> None:
    """422 for too many texts, a text too long, or characters that are not text."""
    if len(texts) > settings.max_texts:
        raise validation_error(
            ("body", field),
            f"at most {settings.max_texts} texts per request, got {len(texts)}",
            "too_long",
        )
    for number, text in enumerate(texts):
        where: tuple[str | int, ...] = ("body", field, number) if indexed else ("body", field)
        if len(text) > settings.max_text_chars:
            raise validation_error(
                where,
                f"text has {len(text)} characters; at most {settings.max_text_chars}",
                "string_too_long",
            )
        if problem := text_problem(text):
            raise validation_error(where, f"text {problem}", "invalid_text")


def _check_languages(body: TranslateRequest, translator: TextCodec) -> None:
    """400 when the request names languages this model does not translate."""
    wrong_source = body.source not in (None, "auto", translator.src_lang)
    wrong_target = body.target not in (None, translator.tgt_lang)
    if translator.src_lang and translator.tgt_lang and (wrong_source or wrong_target):
        raise HTTPException(
            400,
            f"unsupported language pair {body.source or 'auto'}->{body.target or '?'}: this "
            f"model translates {translator.src_lang}->{translator.tgt_lang}",
        )


async def _translate(
    request: Request, sources: list[list[int]], *, tokens: int, beam_size: int, n_best: int
) -> list[str]:
    """Through the batcher; 503 when the queue is full, 504 on timeout, cancel on disconnect."""
    batcher: AnyBatcher | InferencePool = request.app.state.batcher
    settings: Settings = request.app.state.settings
    job = asyncio.ensure_future(
        batcher.submit(sources, tokens=tokens, beam_size=beam_size, n_best=n_best)
    )
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        done, _ = await asyncio.wait(
            {job, gone}, timeout=settings.request_timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        gone.cancel()
        if not job.done():
            job.cancel()  # the batcher skips it, or drops its late result
    if job in done:
        try:
            return job.result()
        except QueueFullError as error:
            raise HTTPException(
                503,
                f"server busy: {error}; retry later",
                headers={"Retry-After": str(settings.retry_after_s)},
            ) from error
        except InferenceProcessError as error:
            raise HTTPException(
                503, f"{error}; retry later", headers={"Retry-After": str(settings.retry_after_s)}
            ) from error
    if gone in done:
        raise HTTPException(499, "client closed the request")
    raise HTTPException(504, f"translation took longer than {settings.request_timeout_s} s")


async def _disconnected(request: Request) -> None:
    """Returns once the client has gone (the body was already read)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


@router.get("/health", response_model=Status)
async def health() -> Status:
    """The process is alive."""
    return Status(status="ok")


@router.get("/ready", response_model=Status, responses={503: {"model": Status}})
async def ready(request: Request) -> Any:
    """The model is loaded and the batch worker runs; 503 otherwise (also while a new inference
    process replaces one that stopped)."""
    if getattr(request.app.state, "translator", None) is None:
        body = {"status": "loading", **error_body("model not loaded", "model not loaded")}
        return JSONResponse(body, status_code=HTTP_503_SERVICE_UNAVAILABLE)
    batcher = getattr(request.app.state, "batcher", None)
    if isinstance(batcher, InferencePool) and not batcher.alive:
        reason = "the inference process is starting again"
        body = {"status": "restarting", **error_body(reason, reason)}
        return JSONResponse(body, status_code=HTTP_503_SERVICE_UNAVAILABLE)
    return Status(status="ready")


@router.get(
    "/model",
    response_model=ModelInfo,
    responses={503: {"model": ErrorResponse}},
    dependencies=[Depends(loaded_translator)],
)
async def model(request: Request) -> ModelInfo:
    """Languages, sizes, parameter count, device (where it decodes) and checkpoint metadata."""
    return ModelInfo(id=request.app.state.model_id, **request.app.state.model_info)


@router.get(
    "/languages",
    response_model=list[libretranslate.Language],
    dependencies=[Depends(loaded_translator)],
)
async def languages(translator: TranslatorDep) -> list[libretranslate.Language]:
    """LibreTranslate's language list: the model's source language with its target."""
    return libretranslate.languages(translator.src_lang, translator.tgt_lang)


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus text format."""
    registry: Metrics = request.app.state.metrics
    payload, content_type = registry.render()
    return Response(payload, media_type=content_type)


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    """The web page: a text box, a button and the translation."""
    return FileResponse(str(STATIC / "index.html"), media_type="text/html")
