"""`iqarena challenge init | serve | demo | submit | organiser | worker | rescore | export`: the challenge platform."""

from __future__ import annotations

import os
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Optional

import typer

from ..errors import InputError, ResourceError


def _need_server():
    try:
        import fastapi  # noqa: F401
        import sqlalchemy  # noqa: F401
    except ImportError as exc:
        raise ResourceError(f"the challenge platform needs the server extra ({exc.name} is missing): "
                            "pip install 'iqarena[server]'.") from None


def register(app: typer.Typer) -> None:
    challenge = typer.Typer(help="Host an IQA challenge: phases, teams, uploads, scoring workers, leaderboards.",
                            no_args_is_help=True)
    app.add_typer(challenge, name="challenge")
    db_opt = typer.Option(None, "--database", help="postgresql://user:pass@host/db (default: SQLite in DIR)")

    @challenge.command("init")
    def init_cmd(
        root: Path = typer.Argument(..., help="the challenge folder to create or update"),
        config: Path = typer.Option(..., "--config", help="challenge.toml: title, phases, labels, leaderboard, limits"),
        database: Optional[str] = db_opt,
        organiser: Optional[str] = typer.Option(
            None, "--organiser", help="also create this organiser account (password: $IQARENA_PASSWORD or a prompt)"),
    ) -> None:
        """Create a challenge folder from a config (or update its config and label files); migrate the database."""
        _need_server()
        from ..challenge import add_organiser, init_challenge
        from ..challenge.db import schema_revision

        ch = init_challenge(root, config, database)
        typer.echo(f"challenge '{ch.config.title}' in {root} (schema {schema_revision(ch.engine)}); phases: "
                   + ", ".join(f"{p.name} ({len(p.names)} images)" for p in ch.config.phases))
        if organiser:
            password = os.environ.get("IQARENA_PASSWORD") or typer.prompt("password", hide_input=True,
                                                                          confirmation_prompt=True)
            typer.echo(add_organiser(root, organiser, password, database))

    @challenge.command("organiser")
    def organiser_cmd(root: Path = typer.Argument(...), name: str = typer.Argument(...),
                      database: Optional[str] = db_opt) -> None:
        """Create an organiser account (password from $IQARENA_PASSWORD or a prompt), or promote a user."""
        _need_server()
        from ..challenge import add_organiser

        password = os.environ.get("IQARENA_PASSWORD")
        try:
            typer.echo(add_organiser(root, name, password, database))
        except Exception as exc:
            if password is not None or "give a password" not in str(exc):
                raise
            password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
            typer.echo(add_organiser(root, name, password, database))

    @challenge.command("serve")
    def serve_cmd(
        root: Path = typer.Argument(..., help="an initialised challenge folder"),
        database: Optional[str] = db_opt,
        host: str = typer.Option("127.0.0.1", "--host"),
        port: int = typer.Option(8000, "--port"),
        workers: int = typer.Option(2, "--workers", min=0, help="scoring worker processes"),
        secure_cookies: bool = typer.Option(False, "--secure-cookies", help="mark cookies Secure (behind HTTPS)"),
    ) -> None:
        """Run the challenge: the pages and the JSON API, and the scoring workers."""
        _need_server()
        from ..challenge.server import serve

        typer.echo(f"serving {root} on http://{host}:{port}/ with {workers} scoring workers", err=True)
        serve(root, database, host, port, workers, secure_cookies=secure_cookies)

    @challenge.command("worker")
    def worker_cmd(root: Path = typer.Argument(...), database: Optional[str] = db_opt) -> None:
        """Run one scoring worker in the foreground (serve starts its own; add more on other machines)."""
        _need_server()
        from ..challenge.worker import main

        main([str(root)] + (["--database", database] if database else []))

    @challenge.command("demo")
    def demo_cmd(
        folder: Path = typer.Option(Path("out/challenge-demo"), "--dir", help="where to build the demo (replaced)"),
        host: str = typer.Option("127.0.0.1", "--host"),
        port: int = typer.Option(8000, "--port"),
        build_only: bool = typer.Option(False, "--build-only", help="build the folder, do not serve"),
    ) -> None:
        """Start a ready demo challenge built from the bundled sample images."""
        _need_server()
        from ..challenge.config import CONFIG_FILE
        from ..challenge.demo import write_demo
        from ..challenge.server import serve

        if folder.exists() and any(folder.iterdir()):
            if not (folder / CONFIG_FILE).is_file():
                raise InputError(f"{folder} exists and is not a challenge folder; choose another --dir.")
            shutil.rmtree(folder)
        _, password = write_demo(folder)
        typer.echo(f"demo challenge in {folder}\n  organiser login: organiser / {password}\n"
                   f"  example submissions: {folder}/source/dev/example-psnr.zip, "
                   f"{folder}/source/dev/example-random.zip"
                   f"\n  open http://{host}:{port}/ and register a participant", err=True)
        if not build_only:
            serve(folder, None, host, port, 2)

    @challenge.command("submit")
    def submit_cmd(
        path: Path = typer.Argument(..., help="the submission zip"),
        server: str = typer.Option(..., "--server", help="the challenge's address, e.g. http://127.0.0.1:8000"),
        token: Optional[str] = typer.Option(None, "--token", help="your API token (default: $IQARENA_TOKEN)"),
        phase: Optional[str] = typer.Option(None, "--phase", help="default: the phase open now"),
        wait: bool = typer.Option(True, "--wait/--no-wait", help="wait until it is scored or failed"),
        timeout: float = typer.Option(600, "--timeout", help="seconds to wait"),
    ) -> None:
        """Upload a submission zip through the JSON API and (by default) wait for its score."""
        import httpx

        from ..submission import check_submission

        token = token or os.environ.get("IQARENA_TOKEN")
        if not token:
            raise InputError("give your API token (--token or $IQARENA_TOKEN); create one on the Tokens page.")
        check_submission(path)  # the same parser as the server: layout, caps, readme
        base = server.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(timeout=60, headers=headers) as client:
            if phase is None:
                info = _json(client.get(f"{base}/api/v1/challenge"))
                open_now = [p["name"] for p in info["phases"] if p["open"]]
                if len(open_now) != 1:
                    raise InputError(f"{len(open_now)} phases are open ({', '.join(open_now) or 'none'}); name one "
                                     "with --phase.")
                phase = open_now[0]
            key = uuid.uuid4().hex  # a retry after a dropped connection gives the same submission
            data = path.read_bytes()
            for attempt in range(5):
                try:
                    sub = _json(client.post(f"{base}/api/v1/phases/{phase}/submissions", content=data,
                                            headers={"Content-Type": "application/zip", "Idempotency-Key": key,
                                                     "X-Filename": path.name}))
                    break
                except httpx.TransportError:
                    if attempt == 4:
                        raise
                    time.sleep(1 + attempt)
            typer.echo(f"submission {sub['id']} to phase {phase}: {sub['status']}", err=True)
            deadline = time.monotonic() + timeout
            while wait and sub["status"] in ("queued", "scoring") and time.monotonic() < deadline:
                time.sleep(1)
                sub = _json(client.get(f"{base}/api/v1/submissions/{sub['id']}"))
        _print_sub(sub)
        if sub["status"] == "failed":
            raise SystemExit(2)

    @challenge.command("rescore")
    def rescore_cmd(root: Path = typer.Argument(...), phase: Optional[str] = typer.Option(None, "--phase"),
                    ids: Optional[list[int]] = typer.Option(None, "--id", help="a submission id (repeatable)"),
                    database: Optional[str] = db_opt) -> None:
        """Queue submissions for scoring again (all of a phase, or by id); workers pick them up."""
        _need_server()
        from ..challenge.service import Challenge

        if not phase and not ids:
            raise InputError("name what to rescore: --phase NAME or --id N.")
        ch = Challenge.open(root, database)
        if phase:
            ch.config.phase(phase)
        with ch.Session.begin() as s:
            n = ch.rescore(s, ids or None, phase)
        typer.echo(f"queued {n} submissions")

    @challenge.command("export")
    def export_cmd(root: Path = typer.Argument(...), phase: str = typer.Option(..., "--phase"),
                   what: str = typer.Option("leaderboard", "--what", help="leaderboard or submissions"),
                   fmt: str = typer.Option("csv", "--format", help="csv or json"),
                   database: Optional[str] = db_opt) -> None:
        """Print a phase's leaderboard (organiser view: hidden scores included) or all its submissions."""
        _need_server()
        from ..challenge.service import Challenge

        ch = Challenge.open(root, database)
        with ch.Session() as s:
            text, _ = ch.export(s, what, phase, fmt)
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _json(response):
    try:
        body = response.json()
    except ValueError:
        body = {"error": response.text[:300]}
    if response.status_code >= 400:
        raise InputError(f"the server refused ({response.status_code}): {body.get('error', body)}")
    return body


def _print_sub(sub: dict) -> None:
    typer.echo(f"submission {sub['id']} ({sub['phase']}): {sub['status']}")
    if sub.get("reason"):
        typer.echo(f"  reason: {sub['reason']}")
    for key in ("main", "srcc", "plcc", "n", "scorer_version", "note"):
        if sub.get(key) is not None:
            typer.echo(f"  {key}: {sub[key]}")
