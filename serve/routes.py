"""The routes that translate and look inside: /translate, /detect, /inspect.

A translation takes the route the registry gives (one model, or two through a pivot
language), each leg through the text pipeline of its model (`TextCodec.prepare` ->
its batcher -> `Prepared.assemble`); the beam size and alternatives apply to the last leg.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Request

from seq2seq import SearchOptions
from seq2seq.introspect import Inspection
from seq2seq.units import rank_units
from serve.batching import BatcherUnavailable, QueueFullError
from serve.detect import Detection, Detector
from serve.errors import validation_error
from serve.registry import ModelUnavailable, NoRoute, Registry, Route
from serve.schemas import (
    DetectedLanguage,
    DetectRequest,
    ErrorResponse,
    InspectRequest,
    TranslateRequest,
    TranslateResponse,
    text_problem,
)
from serve.settings import Settings

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in {
        400: "Unsupported language pair (the answer names those translated)",
        401: "API key missing",
        403: "API key wrong",
        408: "Body not received in time",
        413: "Body too large",
        415: "Body neither JSON nor a urlencoded form",
        422: "Invalid input, with the reason",
        503: "Queue full or model (re)loading; see Retry-After",
        504: "Timed out",
    }.items()
}
Result = TypeVar("Result")
router = APIRouter()


# Dependencies are `async def` so FastAPI runs them inline rather than in its thread pool.


async def app_settings(request: Request) -> Settings:
    """The settings this app was created with."""
    settings: Settings = request.app.state.settings
    return settings


async def app_registry(request: Request) -> Registry:
    """The models of this app, or 503 while they are not open yet."""
    registry: Registry | None = getattr(request.app.state, "registry", None)
    if registry is None or not registry.started:
        raise HTTPException(503, "the models are not loaded yet")
    return registry


SettingsDep = Annotated[Settings, Depends(app_settings)]
RegistryDep = Annotated[Registry, Depends(app_registry)]


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
    expected = settings.api_key.get_secret_value().encode()
    if not secrets.compare_digest(given.encode("utf-8", "surrogatepass"), expected):
        raise HTTPException(403, "API key not valid")


async def _body_api_key(request: Request) -> str | None:
    """LibreTranslate clients send the key as `api_key` in the body (JSON or form)."""
    try:
        payload = await request.json()  # checked JSON by now (serve.body)
    except ValueError:
        return None
    key = payload.get("api_key") if isinstance(payload, dict) else None
    return key if isinstance(key, str) else None


KeyDep = [Depends(require_api_key)]


@router.post(
    "/translate",
    response_model=TranslateResponse,
    response_model_exclude_none=True,
    responses=ERRORS,
    dependencies=KeyDep,
)
async def translate(
    body: TranslateRequest, request: Request, settings: SettingsDep, registry: RegistryDep
) -> TranslateResponse:
    """Translate one text (`text`), several (`texts`) or LibreTranslate's `q`, in input order,
    from `source` (or the language detected) into `target`."""
    started = time.perf_counter()
    texts = body.inputs()
    _check_texts(texts, settings, *body.input_field())
    options = _search(body, settings)
    detected = _detect(request, body.source, texts, registry)
    route = _route(registry, detected.language if detected else body.source, body.target)
    work = _translate_route(registry, route, texts, body.format == "html", options, settings)
    ranked = await _bounded(request, settings, work)
    best = [candidates[0] for candidates in ranked]
    others = [list(dict.fromkeys(candidates))[1 : body.alternatives + 1] for candidates in ranked]
    return TranslateResponse(
        translations=best,
        translation=best[0] if body.text is not None else None,
        translatedText=body.shaped(best) if body.q is not None else None,
        alternatives=body.shaped(others) if body.alternatives else None,
        detectedLanguage=body.shaped([DetectedLanguage(**vars(detected))] * len(texts))
        if detected
        else None,
        pivot=route.pivot,
        model=" > ".join(model.id for model in route.legs),
        beam_size=options.beam_size,
        time_ms=round((time.perf_counter() - started) * 1000, 2),
    )


async def _translate_route(
    registry: Registry,
    route: Route,
    texts: list[str],
    html: bool,
    options: SearchOptions,
    settings: Settings,
) -> list[list[str]]:
    """Every leg in turn; each text's candidates of the last, best first."""
    first = SearchOptions(beam_size=settings.beam_size, max_length=settings.max_length)
    ranked: list[list[str]] = []
    for number, model in enumerate(route.legs):
        leg_options = options if number == len(route.legs) - 1 else first
        prepared = model.codec.prepare(texts, html=html, split=settings.split_sentences)
        outputs: list[list[str]] = []
        if prepared.sources:
            async with registry.using(model) as batcher:
                outputs = await batcher.submit(prepared.sources, leg_options)
        ranked = prepared.assemble(outputs)
        texts = [candidates[0] for candidates in ranked]
    return ranked


def _search(body: TranslateRequest, settings: Settings) -> SearchOptions:
    """The request's or the server's beam, widened to give the alternatives asked for; 422
    over the configured maximum."""
    beam_size = body.beam_size or settings.beam_size
    if beam_size > settings.max_beam_size:
        message = f"beam_size must be at most {settings.max_beam_size}"
        raise validation_error(("body", "beam_size"), message, "too_large")
    if body.alternatives >= settings.max_beam_size:
        message = (
            f"alternatives must be at most {settings.max_beam_size - 1} (the widest beam "
            f"here is {settings.max_beam_size})"
        )
        raise validation_error(("body", "alternatives"), message, "too_large")
    n_best = body.alternatives + 1
    return SearchOptions(
        beam_size=max(beam_size, n_best), n_best=n_best, max_length=settings.max_length
    )


def _check_texts(texts: list[str], settings: Settings, field: str, indexed: bool) -> None:
    """422 for too many texts, a text too long, or characters that are not text."""
    if len(texts) > settings.max_texts:
        message = f"at most {settings.max_texts} texts per request, got {len(texts)}"
        raise validation_error(("body", field), message, "too_long")
    for number, text in enumerate(texts):
        where: tuple[str | int, ...] = ("body", field, number) if indexed else ("body", field)
        if len(text) > settings.max_text_chars:
            message = f"text has {len(text)} characters; at most {settings.max_text_chars}"
            raise validation_error(where, message, "string_too_long")
        if problem := text_problem(text):
            raise validation_error(where, f"text {problem}", "invalid_text")


def _detect(
    request: Request, source: str | None, texts: list[str], registry: Registry
) -> Detection | None:
    """The source language of `texts` when it is 'auto', or left out where several are read."""
    if source not in (None, "auto") or (source is None and len(registry.sources) < 2):
        return None
    detector: Detector = request.app.state.detector
    detected = detector.detect(" ".join(texts)) if " ".join(texts).strip() else None
    if detected is None and len(registry.sources) > 1:
        message = "cannot detect the language of empty text: give 'source'"
        raise validation_error(("body", "source"), message, "undetectable")
    return detected


def _route(registry: Registry, source: str | None, target: str | None) -> Route:
    """400 for a pair no model (or chain of two) translates; 422 without a needed target."""
    try:
        return registry.route(None if source == "auto" else source, target)
    except NoRoute as error:
        pairs = registry.describe_pairs()
        if target is None:
            message = f"'target' is required: this server translates {pairs}"
            raise validation_error(("body", "target"), message, "missing") from error
        raise HTTPException(400, f"{error}: this server translates {pairs}") from error


async def _bounded(request: Request, settings: Settings, work: Awaitable[Result]) -> Result:
    """`work` within the request timeout: 503 when a queue is full or a model is not
    available, 504 on timeout; a client that goes away cancels it."""
    job = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        done, _ = await asyncio.wait(
            {job, gone}, timeout=settings.request_timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        gone.cancel()
        if not job.done():
            job.cancel()  # the batchers drop it before its next batch or decoder step
    if job in done:
        try:
            return job.result()
        except (QueueFullError, BatcherUnavailable, ModelUnavailable) as error:
            busy = isinstance(error, QueueFullError)
            message = f"server busy: {error}; retry later" if busy else f"{error}; retry later"
            headers = {"Retry-After": str(settings.retry_after_s)}
            raise HTTPException(503, message, headers=headers) from error
    if gone in done:
        raise HTTPException(499, "client closed the request")
    raise HTTPException(504, f"translation took longer than {settings.request_timeout_s} s")


async def _disconnected(request: Request) -> None:
    """Returns once the client has gone (the body was already read)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


@router.post(
    "/detect",
    response_model=list[DetectedLanguage],
    responses={422: ERRORS[422]},
    dependencies=KeyDep,
)
async def detect(
    body: DetectRequest, request: Request, settings: SettingsDep, registry: RegistryDep
) -> Any:
    """LibreTranslate's language detection, among the languages this server translates from:
    every candidate, most likely first, with its confidence (0-100)."""
    _check_texts([body.q], settings, "q", False)
    if not body.q.strip():
        raise validation_error(("body", "q"), "no text to detect the language of", "empty")
    detector: Detector = request.app.state.detector
    return [DetectedLanguage(**vars(found)) for found in detector.rank(body.q)]


@router.post("/inspect", responses=ERRORS, dependencies=KeyDep)
async def inspect(
    body: InspectRequest, request: Request, settings: SettingsDep, registry: RegistryDep
) -> dict[str, Any]:
    """Inside the model, for one sentence: every layer's gates, candidate, cell and hidden
    state per token (integers in units of 1/`scale`), the decoder's choices with their top-k,
    and the units whose cell best follows `by`. The answer is what the web page draws."""
    _check_texts([body.text], settings, "text", False)
    detected = _detect(request, body.source, [body.text], registry)
    route = _route(registry, detected.language if detected else body.source, body.target)
    if len(route.legs) > 1:
        message = f"no model translates this pair directly (it goes through {route.pivot})"
        raise HTTPException(400, f"cannot inspect: {message}")
    options = SearchOptions(beam_size=body.beam_size or 1, max_length=settings.max_length)
    try:  # `by` is checked by the schema's pattern
        translator = await registry.inspector(route.legs[0])
        inspection = await asyncio.to_thread(
            translator.inspect, body.text, options, top_k=body.top_k
        )
    except ValueError as error:
        raise validation_error(("body", "text"), str(error), "not_inspectable") from error
    except ModelUnavailable as error:
        raise HTTPException(503, f"{error}; retry later") from error
    return {
        "model": route.legs[0].id,
        "inspection": inspection.to_dict(body.decimals),
        "units": _units(inspection, body.by, body.top),
        "by": body.by,
        "signal": "cell",
    }


def _units(inspection: Inspection, by: str, top: int) -> list[dict[str, Any]]:
    """The top units for `by`; none when `by` is the same at every step (a token that does
    not occur, say), so there is nothing to correlate."""
    try:
        return [unit.to_dict() for unit in rank_units(inspection, by, top=top)]
    except ValueError:
        return []
