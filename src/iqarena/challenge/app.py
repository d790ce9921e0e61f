"""The web application: the JSON API (``/api/v1``, personal tokens) and the pages (session cookie + CSRF).

``create_app(root, url)`` builds it over an initialised challenge folder; ``iqarena challenge serve``
runs it with uvicorn and starts the scoring workers. Nothing here scores: uploads are stored and
queued, workers score them.
"""

from __future__ import annotations

import functools
import hmac
import logging
import secrets
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from ..errors import InputError
from .auth import (Forbidden, NotFound, Refused, create_token, create_user, csrf_ok, end_session, login,
                   revoke_token, session_user, start_session, token_user)
from .config import now_utc
from .db import ApiToken, Submission, Team, User
from .service import Challenge, _iso
from .storage import TooLarge
from .uploads import receive_upload

#: the cookie of the CSRF token of the forms shown before login
FORM_COOKIE = "iqarena_form"
EXPIRED = "the form expired or came from another site; it was reloaded, please send it again."

log = logging.getLogger("iqarena.challenge")
HERE = Path(__file__).parent
COOKIE = "iqarena_session"
SMALL_BODY = 256 << 10
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
}


def _is_upload(path: str) -> bool:
    return path.endswith("/submissions") or path.endswith("/submit")


def create_app(root: str | Path, url: str | None = None, *, challenge: Challenge | None = None,
               secure_cookies: bool = False) -> FastAPI:
    ch = challenge or Challenge.open(root, url)
    app = FastAPI(title=f"iqarena challenge: {ch.config.title}", docs_url="/api/docs", redoc_url=None,
                  openapi_url="/api/openapi.json")
    app.state.challenge = ch
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True))
    env.globals.update(config=ch.config, now=now_utc)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.middleware("http")
    async def guard(request: Request, call_next):
        length = request.headers.get("content-length")
        if (request.method in ("POST", "PUT", "PATCH") and not _is_upload(request.url.path) and length is not None
                and (not length.isdigit() or int(length) > SMALL_BODY)):
            return JSONResponse({"error": "request body too large."}, status_code=413)
        response = await call_next(request)
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        if request.url.path.startswith("/api/") or request.url.path.startswith("/admin"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    # ---------------------------------------------------------------- helpers

    def api_user(s, request: Request, required: bool = True) -> User | None:
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        user = token_user(s, token)
        if user is None and required:
            raise Refused("give a valid API token: Authorization: Bearer <token> (create one on the Tokens page).",
                          401)
        return user

    def organiser(user: User | None) -> User:
        if user is None or not user.organiser:
            raise Forbidden("organisers only.")
        return user

    def api_error(exc: Exception) -> JSONResponse:
        if isinstance(exc, TooLarge):
            return JSONResponse({"error": f"the upload is larger than the cap of {exc.args[0]} bytes."},
                                status_code=413)
        if isinstance(exc, Refused):
            headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
            return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=headers)
        if isinstance(exc, InputError):
            return JSONResponse({"error": str(exc)}, status_code=400)
        if isinstance(exc, ClientDisconnect):
            return Response(status_code=400)
        raise exc

    def render(request: Request, name: str, code: int = 200, **ctx) -> HTMLResponse:
        html = env.get_template(name).render(request=request, **ctx)
        return HTMLResponse(html, status_code=code)

    def page_session(s, request: Request):
        return session_user(s, request.cookies.get(COOKIE))

    def page_error(request, exc, user=None, sess=None) -> HTMLResponse:
        status = 413 if isinstance(exc, TooLarge) else getattr(exc, "status", 400)
        message = (f"the upload is larger than the cap of {exc.args[0]} bytes." if isinstance(exc, TooLarge)
                   else str(exc))
        return render(request, "error.html", status, user=user, csrf=sess.csrf if sess else None, message=message)

    # ---------------------------------------------------------------- API

    def api_route(handler):
        """An API handler whose refusals become JSON errors (``api_error``); anything else is the server's."""
        @functools.wraps(handler)
        def wrapper(*args, **kwargs):
            try:
                return handler(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - api_error re-raises what is not a refusal
                return api_error(exc)
        return wrapper

    @app.post("/api/v1/token")
    @api_route
    def api_token(request: Request, body: dict):
        with ch.Session.begin() as s:
            user = login(s, str(body.get("name", "")), str(body.get("password", "")), _ip(request))
            token = create_token(s, user, str(body.get("label", "api")))
        return {"token": token, "user": user.name}

    @app.get("/api/v1/challenge")
    def api_challenge():
        c = ch.config
        return {"title": c.title, "description": c.description, "columns": list(c.columns),
                "phases": [{"name": p.name, "title": p.title, "start": _iso(p.start), "end": _iso(p.end),
                            "open": p.is_open(), "hidden_scores": p.hidden, "scores_visible": p.scores_visible(),
                            "images": len(p.names), "daily_limit": c.daily_limit(p), "total_limit": c.total_limit(p)}
                           for p in c.phases]}

    @app.get("/api/v1/me")
    @api_route
    def api_me(request: Request):
        with ch.Session() as s:
            user = api_user(s, request)
            team = s.get(Team, user.team_id) if user.team_id else None
            return {"user": user.name, "organiser": user.organiser,
                    "team": None if team is None else {"id": team.id, "name": team.name}}

    def detached_api_user(request: Request) -> User:
        with ch.Session() as s:
            user = api_user(s, request)
            s.expunge(user)
            return user

    def store(user: User, phase: str, incoming, filename: str, key: str | None) -> tuple[dict, bool]:
        sub, created = ch.submit(user, phase, incoming, filename, key)
        with ch.Session() as s:
            return ch.view(sub, user, s.get(Team, sub.team_id).name), created

    @app.post("/api/v1/phases/{phase}/submissions")
    async def api_submit(phase: str, request: Request):
        # every database call runs in the thread pool: the event loop never waits on the database
        incoming = None
        try:
            user = await run_in_threadpool(detached_api_user, request)
            incoming = ch.receive()
            filename, _ = await receive_upload(request, incoming)
            view, created = await run_in_threadpool(store, user, phase, incoming, filename or "submission.zip",
                                                    request.headers.get("idempotency-key"))
            return JSONResponse(view, status_code=201 if created else 200)
        except Exception as exc:  # noqa: BLE001
            if incoming is not None:
                incoming.discard()
            return api_error(exc)

    @app.get("/api/v1/submissions")
    @api_route
    def api_submissions(request: Request, phase: str | None = None):
        with ch.Session() as s:
            user = api_user(s, request)
            if user.organiser:
                q = select(Submission).order_by(Submission.id.desc())
                subs = list(s.scalars(q.where(Submission.phase == phase) if phase else q))
            elif user.team_id is None:
                subs = []
            else:
                subs = ch.team_submissions(s, user.team_id, phase)
            names = dict(s.execute(select(Team.id, Team.name)).all())
            return {"submissions": [ch.view(x, user, names.get(x.team_id)) for x in subs]}

    @app.get("/api/v1/submissions/{sub_id}")
    @api_route
    def api_submission(sub_id: int, request: Request):
        with ch.Session() as s:
            user = api_user(s, request)
            sub = ch.submission_for(s, user, sub_id)
            return ch.view(sub, user, s.get(Team, sub.team_id).name)

    @app.get("/api/v1/submissions/{sub_id}/file")
    @api_route
    def api_submission_file(sub_id: int, request: Request):
        with ch.Session() as s:
            sub = ch.submission_for(s, api_user(s, request), sub_id)
        return _download(ch, sub)

    @app.get("/api/v1/phases/{phase}/leaderboard")
    @api_route
    def api_leaderboard(phase: str, request: Request):
        with ch.Session() as s:
            return ch.leaderboard(s, phase, api_user(s, request, required=False))

    @app.post("/api/v1/submissions/{sub_id}/rescore")
    @api_route
    def api_rescore(sub_id: int, request: Request):
        with ch.Session.begin() as s:
            organiser(api_user(s, request))
            if s.get(Submission, sub_id) is None:
                raise NotFound("no such submission.")
            return {"queued": ch.rescore(s, [sub_id])}

    @app.post("/api/v1/phases/{phase}/rescore")
    @api_route
    def api_rescore_phase(phase: str, request: Request):
        with ch.Session.begin() as s:
            organiser(api_user(s, request))
            ch.config.phase(phase)
            return {"queued": ch.rescore(s, phase=phase)}

    @app.post("/api/v1/submissions/{sub_id}/hide")
    @api_route
    def api_hide(sub_id: int, request: Request, body: dict):
        with ch.Session.begin() as s:
            organiser(api_user(s, request))
            sub = s.get(Submission, sub_id)
            if sub is None:
                raise NotFound("no such submission.")
            sub.hidden = bool(body.get("hidden", True))
            return {"id": sub.id, "hidden": sub.hidden}

    @app.post("/api/v1/teams/{team_id}/disqualify")
    @api_route
    def api_disqualify(team_id: int, request: Request, body: dict):
        with ch.Session.begin() as s:
            organiser(api_user(s, request))
            team = s.get(Team, team_id)
            if team is None:
                raise NotFound("no such team.")
            team.disqualified = bool(body.get("disqualified", True))
            return {"id": team.id, "disqualified": team.disqualified}

    @app.get("/api/v1/phases/{phase}/export/{what}")
    @api_route
    def api_export(phase: str, what: str, request: Request, format: str = "json"):
        with ch.Session() as s:
            organiser(api_user(s, request))
            text, media = ch.export(s, what, phase, format)
        return Response(text, media_type=media)

    # ---------------------------------------------------------------- pages

    def with_session(request: Request, handler, *, need_user=True, need_organiser=False, form=None):
        """Run ``handler(s, user, sess)`` in a transaction; pages answer errors as HTML."""
        with ch.Session() as s:
            user, sess = page_session(s, request)
            try:
                if need_user and user is None:
                    return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
                if need_organiser and not (user and user.organiser):
                    raise Forbidden("organisers only.")
                if form is not None and not csrf_ok(sess, form.get("csrf")):
                    raise Forbidden("the form has expired or did not come from this site (CSRF check); reload the "
                                    "page and try again.")
                result = handler(s, user, sess)
                s.commit()
                return result
            except (Refused, InputError) as exc:
                s.rollback()
                return page_error(request, exc, user, sess)

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request):
        return with_session(request, lambda s, user, sess: render(
            request, "index.html", user=user, csrf=sess and sess.csrf, phases=ch.config.phases), need_user=False)

    def anonymous_form(request: Request, name: str, code: int = 200, **ctx) -> HTMLResponse:
        """A form shown before login (register, log in), with a CSRF token bound to a short cookie
        (double submit: a cross-site page can neither read the cookie nor set the field)."""
        token = request.cookies.get(FORM_COOKIE) or secrets.token_urlsafe(32)
        response = render(request, name, code, user=None, csrf=token, **ctx)
        response.set_cookie(FORM_COOKIE, token, httponly=True, samesite="strict", secure=secure_cookies, path="/",
                            max_age=3600)
        return response

    def anonymous_csrf_ok(request: Request, form) -> bool:
        cookie, given = request.cookies.get(FORM_COOKIE), form.get("csrf")
        return bool(cookie) and isinstance(given, str) and hmac.compare_digest(cookie, given)

    @app.get("/register", response_class=HTMLResponse)
    def register_page(request: Request):
        return anonymous_form(request, "register.html", message=None)

    @app.post("/register")
    async def register(request: Request):
        form = await request.form()
        if not anonymous_csrf_ok(request, form):
            return anonymous_form(request, "register.html", 403, message=EXPIRED)

        def handler():  # argon2 and the database off the event loop
            try:
                with ch.Session.begin() as s:
                    if str(form.get("password", "")) != str(form.get("password2", "")):
                        raise Refused("the two passwords differ.")
                    user = create_user(s, str(form.get("name", "")), str(form.get("password", "")))
                    token = start_session(s, user)
            except Refused as exc:
                return anonymous_form(request, "register.html", exc.status, message=str(exc))
            return _logged_in(token, "/team", secure_cookies)
        return await run_in_threadpool(handler)

    @app.get("/login", response_class=HTMLResponse)
    def login_page(request: Request, next: str = "/"):
        return anonymous_form(request, "login.html", message=None, next=_local(next))

    @app.post("/login")
    async def login_post(request: Request):
        form = await request.form()
        nxt = _local(str(form.get("next", "/")))
        if not anonymous_csrf_ok(request, form):
            return anonymous_form(request, "login.html", 403, message=EXPIRED, next=nxt)

        def handler():
            try:
                with ch.Session.begin() as s:
                    user = login(s, str(form.get("name", "")), str(form.get("password", "")), _ip(request))
                    token = start_session(s, user)
            except Refused as exc:
                return anonymous_form(request, "login.html", exc.status, message=str(exc), next=nxt)
            return _logged_in(token, nxt, secure_cookies)
        return await run_in_threadpool(handler)

    @app.post("/logout")
    async def logout(request: Request):
        form = await request.form()

        def handler(s, user, sess):
            end_session(s, request.cookies.get(COOKIE))
            response = RedirectResponse("/", status_code=303)
            response.delete_cookie(COOKIE, path="/")
            return response
        return await run_in_threadpool(with_session, request, handler, form=form)

    @app.get("/team", response_class=HTMLResponse)
    def team_page(request: Request):
        def handler(s, user, sess):
            team = s.get(Team, user.team_id) if user.team_id else None
            members = list(s.scalars(select(User.name).where(User.team_id == team.id))) if team else []
            return render(request, "team.html", user=user, csrf=sess.csrf, team=team, members=members)
        return with_session(request, handler)

    @app.post("/team/create")
    async def team_create(request: Request):
        form = await request.form()

        def handler(s, user, sess):
            ch.create_team(s, user, str(form.get("name", "")))
            return RedirectResponse("/team", status_code=303)
        return await run_in_threadpool(with_session, request, handler, form=form)

    @app.post("/team/join")
    async def team_join(request: Request):
        form = await request.form()

        def handler(s, user, sess):
            ch.join_team(s, user, str(form.get("invite", "")))
            return RedirectResponse("/team", status_code=303)
        return await run_in_threadpool(with_session, request, handler, form=form)

    @app.get("/phases/{name}", response_class=HTMLResponse)
    def phase_page(name: str, request: Request):
        def handler(s, user, sess):
            try:
                phase = ch.config.phase(name)
            except InputError:
                raise NotFound("no such phase.") from None
            board = ch.leaderboard(s, name, user)
            usage = ch.usage(s, user.team_id, phase) if user and user.team_id else None
            mine = ch.team_submissions(s, user.team_id, name)[:10] if user and user.team_id else []
            return render(request, "phase.html", user=user, csrf=sess and sess.csrf, phase=phase, board=board,
                          usage=usage, mine=[ch.view(x, user) for x in mine])
        return with_session(request, handler, need_user=False)

    @app.get("/phases/{name}/names.txt")
    def phase_names(name: str):
        try:
            phase = ch.config.phase(name)
        except InputError:
            return PlainTextResponse("no such phase\n", status_code=404)
        return PlainTextResponse("".join(f"{n}\n" for n in phase.names),
                                 headers={"Content-Disposition": f'attachment; filename="{name}_names.txt"'})

    @app.get("/phases/{name}/data")
    def phase_data(name: str, request: Request):
        def handler(s, user, sess):
            phase = ch.config.phase(name)
            if phase.data is None:
                raise NotFound("this phase has no data file.")
            return FileResponse(phase.data, filename=f"{name}{''.join(phase.data.suffixes)}")
        return with_session(request, handler)

    def detached_page_user(request: Request):
        with ch.Session() as s:
            user, sess = page_session(s, request)
            if user is not None:
                s.expunge(user)
                s.expunge(sess)
            return user, sess

    @app.post("/phases/{name}/submit")
    async def phase_submit(name: str, request: Request):
        user, sess = await run_in_threadpool(detached_page_user, request)
        if user is None:
            return RedirectResponse(f"/login?next={quote('/phases/' + name)}", status_code=303)
        incoming = ch.receive()
        try:
            filename, fields = await receive_upload(request, incoming)
            if not csrf_ok(sess, fields.get("csrf")):
                raise Forbidden("the form has expired or did not come from this site (CSRF check); reload the page.")
            sub, _ = await run_in_threadpool(ch.submit, user, name, incoming, filename or "submission.zip",
                                             fields.get("key"))
            return RedirectResponse(f"/submissions/{sub.id}", status_code=303)
        except (Refused, TooLarge, InputError) as exc:
            incoming.discard()
            return page_error(request, exc, user, sess)
        except ClientDisconnect:
            incoming.discard()
            return Response(status_code=400)

    @app.get("/submissions", response_class=HTMLResponse)
    def submissions_page(request: Request):
        def handler(s, user, sess):
            subs = ch.team_submissions(s, user.team_id) if user.team_id else []
            return render(request, "submissions.html", user=user, csrf=sess.csrf,
                          subs=[ch.view(x, user) for x in subs])
        return with_session(request, handler)

    @app.get("/submissions/{sub_id}", response_class=HTMLResponse)
    def submission_page(sub_id: int, request: Request):
        def handler(s, user, sess):
            sub = ch.submission_for(s, user, sub_id)
            return render(request, "submission.html", user=user, csrf=sess.csrf,
                          sub=ch.view(sub, user, s.get(Team, sub.team_id).name))
        return with_session(request, handler)

    @app.get("/submissions/{sub_id}/download")
    def submission_download(sub_id: int, request: Request):
        return with_session(request, lambda s, user, sess: _download(ch, ch.submission_for(s, user, sub_id)))

    @app.get("/tokens", response_class=HTMLResponse)
    def tokens_page(request: Request):
        def handler(s, user, sess):
            rows = list(s.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)))
            return render(request, "tokens.html", user=user, csrf=sess.csrf, tokens=rows, new=None)
        return with_session(request, handler)

    @app.post("/tokens")
    async def tokens_create(request: Request):
        form = await request.form()

        def handler(s, user, sess):
            new = create_token(s, user, str(form.get("label", "")))
            rows = list(s.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)))
            return render(request, "tokens.html", user=user, csrf=sess.csrf, tokens=rows, new=new)
        return await run_in_threadpool(with_session, request, handler, form=form)

    @app.post("/tokens/{token_id}/revoke")
    async def tokens_revoke(token_id: int, request: Request):
        form = await request.form()

        def handler(s, user, sess):
            revoke_token(s, user, token_id)
            return RedirectResponse("/tokens", status_code=303)
        return await run_in_threadpool(with_session, request, handler, form=form)

    # ---------------------------------------------------------------- organiser pages

    @app.get("/admin", response_class=HTMLResponse)
    def admin_page(request: Request, phase: str | None = None, status: str | None = None):
        def handler(s, user, sess):
            q = select(Submission, Team).join(Team, Team.id == Submission.team_id).order_by(Submission.id.desc())
            if phase:
                q = q.where(Submission.phase == phase)
            if status:
                q = q.where(Submission.status == status)
            rows = [(ch.view(sub, user, team.name), team) for sub, team in s.execute(q.limit(500))]
            teams = list(s.scalars(select(Team).order_by(Team.name)))
            return render(request, "admin.html", user=user, csrf=sess.csrf, rows=rows, teams=teams,
                          phases=ch.config.phases, phase=phase, status=status)
        return with_session(request, handler, need_organiser=True)

    async def admin_action(request: Request, action):
        form = await request.form()

        def handler(s, user, sess):
            action(s)
            return RedirectResponse(_local(str(form.get("back", "/admin"))), status_code=303)
        return await run_in_threadpool(with_session, request, handler, need_organiser=True, form=form)

    @app.post("/admin/submissions/{sub_id}/rescore")
    async def admin_rescore(sub_id: int, request: Request):
        return await admin_action(request, lambda s: ch.rescore(s, [sub_id]))

    @app.post("/admin/phases/{name}/rescore")
    async def admin_rescore_phase(name: str, request: Request):
        return await admin_action(request, lambda s: (ch.config.phase(name), ch.rescore(s, phase=name)))

    def _toggle(s, model, obj_id, attr):
        obj = s.get(model, obj_id)
        if obj is None:
            raise NotFound("not found.")
        setattr(obj, attr, not getattr(obj, attr))

    @app.post("/admin/submissions/{sub_id}/hide")
    async def admin_hide(sub_id: int, request: Request):
        return await admin_action(request, lambda s: _toggle(s, Submission, sub_id, "hidden"))

    @app.post("/admin/teams/{team_id}/disqualify")
    async def admin_disqualify(team_id: int, request: Request):
        return await admin_action(request, lambda s: _toggle(s, Team, team_id, "disqualified"))

    @app.get("/admin/export/{what}/{phase}.{fmt}")
    def admin_export(what: str, phase: str, fmt: str, request: Request):
        def handler(s, user, sess):
            text, media = ch.export(s, what, phase, fmt)
            return Response(text, media_type=media,
                            headers={"Content-Disposition": f'attachment; filename="{phase}-{what}.{fmt}"'})
        return with_session(request, handler, need_organiser=True)

    @app.get("/healthz")
    def healthz():
        return {"ok": True}

    return app


def _download(ch: Challenge, sub: Submission):
    path = ch.file_of(sub)
    if not path.is_file():
        raise NotFound("the file is missing on the server.")
    return FileResponse(path, media_type="application/zip", filename=f"submission-{sub.id}.zip")


def _logged_in(token: str, target: str, secure: bool) -> RedirectResponse:
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="lax", secure=secure, path="/",
                        max_age=14 * 24 * 3600)
    return response


def _local(target: str) -> str:
    """A redirect target on this site only (no scheme, no host, no '//')."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _ip(request: Request) -> str:
    return request.client.host if request.client else "?"
