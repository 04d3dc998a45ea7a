"""The review web app: FastAPI, server-rendered Jinja2 pages, a little plain JavaScript, the SQLite store.

Pages: ``/`` (progress per class, export), ``/review/<class>`` (one candidate at a time, keyboard driven),
``/grid/<class>`` (a screen of tiles accepted at once), ``/help`` (keys). JSON API under ``/api``;
``/image/<id>`` serves a pool image by its database id only (never a client path), ``/cam/<candidate>``
its CAM overlay for the class under review, and ``/export/*`` downloads the list and manifest. A class
name may hold any character, ``/`` included: it travels percent-encoded and the routes take the rest of
the path. Each request uses one SQLite connection (:meth:`ReviewStore.session`).

Safety: bound to loopback by default, where the Host header must be a loopback name (no DNS rebinding);
anywhere else a token is required (``?token=`` once, then a cookie named after the port, since browsers
send a cookie to every port of a host, or the ``X-Woodseg-Token`` header). State-changing requests must be
JSON from the same origin (no cross-site form posts) with a Content-Length of at most ``MAX_BODY`` bytes.
Bad input gets a 4xx with a short JSON message; a full disk a 507 that says so (the decision is not
saved, and the page keeps it for a retry); unexpected errors a 500 without a traceback (logged on the
server). Every response, errors included, carries the security headers.
"""

from __future__ import annotations

import errno
import functools
import hmac
import io
import ipaddress
import logging
import math
import sqlite3
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from woodseg.data.images import load_image
from woodseg.data.transforms import resize_long
from woodseg.errors import ConfigError, ImageError, WoodsegError
from woodseg.ood.export import manifest_csv, manifest_rows, ood_list_text, write_export
from woodseg.ood.review.cam import CamOverlays, CamUnavailable
from woodseg.ood.review.store import MAX_REVIEWER_LEN, ClassProgress, ReviewStore

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
TOKEN_COOKIE = "woodseg_token"
TOKEN_HEADER = "x-woodseg-token"
MAX_BATCH = 500
MAX_BODY = 256 * 1024  # a full grid batch (500 items) is about 40 kB
DISK_FULL = ("the disk holding the review database is full: this decision was NOT saved. Free some disk space, "
             "then press the key again (every decision saved before is safe).")
DISK_FULL_OTHER = ("the disk is full: {what} failed and nothing was half-written. Free some disk space and try again "
                   "(every decision saved before is safe).")
BIG = 2**62

Reviewer = Annotated[str, Field(min_length=1, max_length=MAX_REVIEWER_LEN, pattern=r"^[^\x00-\x1f\x7f]+$")]
ClientId = Annotated[str, Field(max_length=64, pattern=r"^[A-Za-z0-9_.:-]*$")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DecisionIn(_Body):
    candidate: int = Field(ge=1, le=BIG)
    decision: Literal["keep", "reject", "skip"]
    reviewer: Reviewer
    base_seq: int | None = Field(None, ge=0, le=BIG)
    client: ClientId | None = None


class BatchItem(_Body):
    candidate: int = Field(ge=1, le=BIG)
    decision: Literal["keep", "reject", "skip"]
    base_seq: int | None = Field(None, ge=0, le=BIG)


class BatchIn(_Body):
    reviewer: Reviewer
    items: list[BatchItem] = Field(min_length=1, max_length=MAX_BATCH)
    client: ClientId | None = None


class UndoIn(_Body):
    reviewer: Reviewer
    class_name: str | None = Field(None, max_length=200)
    client: ClientId | None = None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(host_header: str) -> str:
    """The host part of a Host header: ``[::1]:8000`` -> ``::1``, ``localhost:8000`` -> ``localhost``."""
    h = host_header.strip()
    if h.startswith("["):
        return h[1:].split("]", 1)[0]
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve beyond loopback without a token (the review pages expose the pool)."""
    if not is_loopback(host) and not token:
        raise ConfigError(f"refusing to bind to {host} without a token: anyone who can reach it could review",
                          fix="pass --token <secret> (or --token auto), or bind to 127.0.0.1 (the default)")
    if token is not None and len(token) < 8:
        raise ConfigError("the token is too short", fix="use at least 8 characters, e.g. --token auto")


def token_cookie(port: int | None) -> str:
    """The token cookie's name: one per port, as cookies ignore ports (RFC 6265 section 8.5)."""
    return TOKEN_COOKIE if port is None else f"{TOKEN_COOKIE}_{port}"


def url_part(text: str) -> str:
    """A class name as one URL path segment: every reserved character, ``/`` included, percent-encoded."""
    return quote(text, safe="")


def is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    return isinstance(exc, sqlite3.OperationalError) and (
        getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(exc))


def create_app(store: ReviewStore, *, token: str | None = None, reviewer: str = "reviewer",
               loopback_only_hosts: bool = True, export_dir: str | Path | None = None,
               port: int | None = None, cam_device: str = "cpu") -> FastAPI:
    """Build the app. ``loopback_only_hosts`` enforces a loopback Host header (set it when bound to loopback);
    ``port`` names the token cookie."""
    app = FastAPI(title="woodseg OoD review", docs_url=None, redoc_url=None, openapi_url=None)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["urlpart"] = url_part
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    export_dir = Path(export_dir) if export_dir is not None else store.path.parent / "export"
    cookie = token_cookie(port)
    cams = CamOverlays(store.meta(), store.path.parent / f"{store.path.name}.cams", device=cam_device)

    def one_conn(fn: Callable[..., Any]) -> Callable[..., Any]:
        """Run an endpoint inside one store session (one SQLite connection for the whole request)."""
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with store.session():
                return fn(*args, **kwargs)
        return wrapper

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        if loopback_only_hosts and not is_loopback(host_name(request.headers.get("host", ""))):
            return JSONResponse({"detail": "unexpected Host header"}, status_code=400)
        if token is not None:
            given = request.headers.get(TOKEN_HEADER) or request.cookies.get(cookie)
            query_token = request.query_params.get("token")
            if query_token is not None and hmac.compare_digest(query_token.encode(), token.encode()):
                params = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
                target = request.url.path + (f"?{urlencode(params)}" if params else "")
                resp: Response = RedirectResponse(target, status_code=303)
                resp.set_cookie(cookie, token, httponly=True, samesite="strict")
                return _secure(resp)
            if given is None or not hmac.compare_digest(given.encode(), token.encode()):
                return _secure(JSONResponse({"detail": "a valid token is required (open the URL printed at start)"},
                                            status_code=401))
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            length = request.headers.get("content-length")
            if length is None or not length.isdigit():
                return _secure(JSONResponse({"detail": "send a Content-Length header"}, status_code=411))
            if int(length) > MAX_BODY:
                return _secure(JSONResponse({"detail": f"request body too large (limit {MAX_BODY} bytes)"},
                                            status_code=413))
            ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype != "application/json":
                return _secure(JSONResponse({"detail": "send JSON (Content-Type: application/json)"}, status_code=415))
            origin = request.headers.get("origin")
            if origin is not None and origin.split("://", 1)[-1] != request.headers.get("host"):
                return _secure(JSONResponse({"detail": "cross-origin request refused"}, status_code=403))
        return _secure(await call_next(request))

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()[:5]]
        return JSONResponse({"detail": "invalid request", "errors": errors}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    @app.exception_handler(WoodsegError)
    async def woodseg_error(request: Request, exc: WoodsegError) -> Response:
        log.warning("review app: %s", exc)
        return _secure(JSONResponse({"detail": str(exc)}, status_code=409))

    @app.exception_handler(OSError)
    @app.exception_handler(sqlite3.Error)
    async def storage_error(request: Request, exc: Exception) -> Response:
        if is_disk_full(exc):
            log.error("review app: disk full on %s %s: %s", request.method, request.url.path, exc)
            path = request.url.path
            detail = (DISK_FULL if path.startswith(("/api/decisions", "/api/undo"))
                      else DISK_FULL_OTHER.format(what="writing the export" if path == "/api/export" else "this request"))
            return _secure(JSONResponse({"detail": detail, "disk_full": True}, status_code=507))
        return await internal_error(request, exc)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> Response:
        # Starlette answers this one outside every middleware: the headers must be set here.
        log.exception("review app: unexpected error on %s %s", request.method, request.url.path)
        return _secure(JSONResponse({"detail": "internal error (see the server log)"}, status_code=500))

    def need_class(name: str) -> str:
        if store.class_id(name) is None:
            raise HTTPException(404, f"unknown class '{name}'")
        return name

    def progress_json() -> list[dict[str, Any]]:
        return [p.to_json() for p in store.progress().values()]

    def pace_json(who: str, p: ClassProgress | None) -> dict[str, Any]:
        """The reviewer's looks per minute and, for a class's progress, the minutes left to its target."""
        pace = store.pace(who)
        if p is None:
            return pace
        left = 0.0 if p.reached else p.expected_remaining
        if left is None and p.reviewed == 0:
            left = float(max(0, p.target_n - p.kept))  # nothing rejected yet: every look counts
        rate = pace["looks_per_minute"]
        minutes = left / rate if rate and left is not None and math.isfinite(left) else None
        return {**pace, "class_name": p.name, "looks_left": None if left is None or not math.isfinite(left) else left,
                "minutes_left": None if minutes is None else round(minutes, 1)}

    def page_context(request: Request, **extra: Any) -> dict[str, Any]:
        return {"request": request, "classes": store.class_names(), "settings": store.settings,
                "default_reviewer": reviewer, **extra}

    # -- pages ---------------------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse)
    @one_conn
    def index(request: Request) -> Response:
        meta = store.meta()
        return templates.TemplateResponse(request, "index.html", page_context(
            request, progress=store.progress().values(), meta=meta, export_dir=str(export_dir)))

    @app.get("/help", response_class=HTMLResponse)
    @one_conn
    def help_page(request: Request) -> Response:
        return templates.TemplateResponse(request, "help.html", page_context(request))

    @app.get("/review/{class_name:path}", response_class=HTMLResponse)
    @one_conn
    def review_page(request: Request, class_name: str) -> Response:
        need_class(class_name)
        data = {"class_name": class_name, "candidates": [s.to_json() for s in store.states(class_name, include_hidden=False)],
                "progress": store.progress(class_name)[class_name].to_json(), "default_reviewer": reviewer,
                "cam": cams.unavailable(), "class_path": url_part(class_name)}
        return templates.TemplateResponse(request, "review.html", page_context(request, class_name=class_name, data=data))

    @app.get("/grid/{class_name:path}", response_class=HTMLResponse)
    @one_conn
    def grid_page(request: Request, class_name: str, page: int = Query(0, ge=0, le=10**6),
                  size: int = Query(24, ge=1, le=200)) -> Response:
        need_class(class_name)
        states = store.states(class_name, include_hidden=False)
        pages = max(1, -(-len(states) // size))
        tiles = states[page * size:(page + 1) * size]
        data = {"class_name": class_name, "tiles": [s.to_json() for s in tiles], "page": page, "pages": pages,
                "size": size, "progress": store.progress(class_name)[class_name].to_json(), "default_reviewer": reviewer,
                "flag": store.settings.flag, "cam": cams.unavailable(), "class_path": url_part(class_name)}
        return templates.TemplateResponse(request, "grid.html", page_context(
            request, class_name=class_name, data=data, page=page, pages=pages, size=size))

    # -- API -----------------------------------------------------------------------------------------
    @app.get("/api/progress")
    @one_conn
    def api_progress() -> dict[str, Any]:
        return {"classes": progress_json(), "settings": store.settings.__dict__}

    @app.get("/api/classes/{class_name:path}/candidates")
    @one_conn
    def api_candidates(class_name: str, include_hidden: bool = False) -> dict[str, Any]:
        need_class(class_name)
        return {"candidates": [s.to_json() for s in store.states(class_name, include_hidden=include_hidden)],
                "progress": store.progress(class_name)[class_name].to_json()}

    @app.get("/api/pace")
    @one_conn
    def api_pace(who: str = Query(..., min_length=1, max_length=MAX_REVIEWER_LEN, alias="reviewer"),
                 class_name: str | None = Query(None, max_length=200)) -> dict[str, Any]:
        if class_name is not None:
            need_class(class_name)
        return pace_json(who, store.progress(class_name)[class_name] if class_name is not None else None)

    @app.get("/api/candidates/{candidate_id}")
    @one_conn
    def api_candidate(candidate_id: int) -> dict[str, Any]:
        s = store.candidate(candidate_id) if 0 < candidate_id < BIG else None
        if s is None:
            raise HTTPException(404, "unknown candidate")
        return s.to_json()

    @app.post("/api/decisions")
    @one_conn
    def api_decide(body: DecisionIn) -> dict[str, Any]:
        try:
            res = store.decide(body.candidate, body.decision, body.reviewer, base_seq=body.base_seq, client=body.client)
        except KeyError:
            raise HTTPException(404, "unknown candidate") from None
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        s = store.candidate(body.candidate)
        assert s is not None
        progress = store.progress(s.class_name)[s.class_name]
        return {**res.__dict__, "state": s.state, "progress": progress.to_json(),
                "pace": pace_json(body.reviewer.strip(), progress)}

    @app.post("/api/decisions/batch")
    @one_conn
    def api_decide_batch(body: BatchIn) -> dict[str, Any]:
        try:
            res = store.decide_many([(i.candidate, i.decision, i.base_seq) for i in body.items], body.reviewer,
                                    client=body.client)
        except KeyError as exc:
            raise HTTPException(404, f"unknown candidate {exc.args[0]}") from None
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        return {"results": [r.__dict__ for r in res], "progress": progress_json(), "pace": pace_json(body.reviewer.strip(), None)}

    @app.post("/api/undo")
    @one_conn
    def api_undo(body: UndoIn) -> dict[str, Any]:
        if body.class_name is not None:
            need_class(body.class_name)
        try:
            res = store.undo(body.reviewer, body.class_name, client=body.client)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        if res is None:
            return {"undone": None}
        s = store.candidate(res["candidate"])
        assert s is not None
        return {**res, "candidate_state": s.to_json(), "progress": store.progress(s.class_name)[s.class_name].to_json()}

    @app.get("/api/events")
    @one_conn
    def api_events(after: int = Query(0, ge=0, le=BIG), limit: int = Query(1000, ge=1, le=10000)) -> dict[str, Any]:
        return {"events": store.events(after, limit)}

    @app.post("/api/export")
    @one_conn
    def api_export() -> dict[str, Any]:
        res = write_export(store, export_dir)
        return {"ood_list": str(res.ood_list), "manifest": str(res.manifest), "num_images": res.num_images,
                "per_class": res.per_class}

    # -- files ---------------------------------------------------------------------------------------
    @app.get("/image/{image_id}")
    @one_conn
    def image(image_id: int, max_side: int = Query(1024, ge=16, le=4096, alias="max")) -> Response:
        path = store.image_path(image_id) if 0 < image_id < BIG else None
        if path is None:
            raise HTTPException(404, "no such image in this pool")
        try:
            data = _encoded(str(path), path.stat().st_mtime_ns if path.exists() else 0, max_side)
        except ImageError as exc:
            log.warning("review app: %s", exc)
            raise HTTPException(404, "the image file is missing or unreadable on the server") from None
        store.record_shown(image_id)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/cam/{candidate_id}")
    @one_conn
    def cam(candidate_id: int) -> Response:
        s = store.candidate(candidate_id) if 0 < candidate_id < BIG else None
        path = store.image_path(s.image) if s is not None else None
        if s is None or path is None:
            raise HTTPException(404, "unknown candidate")
        try:
            data = cams.png(s.id, s.class_name, path)
        except CamUnavailable as exc:
            raise HTTPException(404, str(exc)) from None
        except ImageError as exc:
            log.warning("review app: %s", exc)
            raise HTTPException(404, "the image file is missing or unreadable on the server") from None
        return Response(data, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/export/ood_list.txt")
    @one_conn
    def export_list() -> PlainTextResponse:
        return PlainTextResponse(ood_list_text(store), headers={"Content-Disposition": 'attachment; filename="ood_list.txt"'})

    @app.get("/export/manifest.csv")
    @one_conn
    def export_manifest_csv() -> PlainTextResponse:
        return PlainTextResponse(manifest_csv(manifest_rows(store)), media_type="text/csv",
                                 headers={"Content-Disposition": 'attachment; filename="manifest.csv"'})

    @app.get("/export/manifest.json")
    @one_conn
    def export_manifest_json() -> JSONResponse:
        return JSONResponse(manifest_rows(store), headers={"Content-Disposition": 'attachment; filename="manifest.json"'})

    return app


@lru_cache(maxsize=256)
def _encoded(path: str, mtime_ns: int, max_side: int) -> bytes:
    """JPEG bytes of an image in its displayed orientation, long side at most ``max_side`` (cached)."""
    img = load_image(path)
    if max(img.shape[:2]) > max_side:
        img = resize_long(img, max_side)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _secure(resp: Response) -> Response:
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("X-Frame-Options", "DENY")
    resp.headers.setdefault("Referrer-Policy", "no-referrer")
    resp.headers.setdefault("Content-Security-Policy",
                            "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; "
                            "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
    return resp


def serve(store: ReviewStore, *, host: str = "127.0.0.1", port: int = 8765, token: str | None = None,
          reviewer: str = "reviewer", export_dir: str | Path | None = None) -> None:
    """Run the app with uvicorn until interrupted (checks the bind/token rule first)."""
    import uvicorn

    check_bind(host, token)
    app = create_app(store, token=token, reviewer=reviewer, loopback_only_hosts=is_loopback(host),
                     export_dir=export_dir, port=port)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    print(f"woodseg review: open {url}  (Ctrl+C to stop; decisions are saved as you go)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
