"""What the API and the pages do, in one place: teams, uploads under the limits, views that hide what a
viewer may not see, leaderboards, the organiser's actions and exports."""

from __future__ import annotations

import csv
import io
import json
import math
import secrets
import zipfile
from dataclasses import dataclass
from datetime import datetime, time, timezone
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .auth import Forbidden, NotFound, Refused, TooMany
from .config import COLUMN_TITLES, Config, Phase, load_config, now_utc
from .db import Submission, Team, User, database_url, make_engine, migrate, sessions
from .storage import Incoming, stored_path

TEAM_NAME_MAX = 64


@dataclass
class Challenge:
    """An initialised challenge folder with its database."""

    root: Path
    config: Config
    engine: object
    Session: object

    @classmethod
    def open(cls, root: str | Path, url: str | None = None, *, upgrade: bool = True) -> "Challenge":
        root = Path(root)
        config = load_config(root)
        engine = make_engine(database_url(root, url))
        if upgrade:
            migrate(engine)
        return cls(root, config, engine, sessions(engine))

    # ------------------------------------------------------------ teams

    def create_team(self, s: Session, user: User, name: str) -> Team:
        name = " ".join((name or "").split())
        if not name or len(name) > TEAM_NAME_MAX:
            raise Refused(f"a team name is 1-{TEAM_NAME_MAX} characters.")
        if user.team_id is not None:
            raise Refused("you are already in a team.", 409)
        if s.scalar(select(Team.id).where(func.lower(Team.name) == name.lower())) is not None:
            raise Refused("that team name is taken; choose another.", 409)
        team = Team(name=name, invite=secrets.token_urlsafe(12), disqualified=False, created_at=now_utc())
        s.add(team)
        s.flush()
        user.team_id = team.id
        return team

    def join_team(self, s: Session, user: User, invite: str) -> Team:
        if user.team_id is not None:
            raise Refused("you are already in a team.", 409)
        team = s.scalar(select(Team).where(Team.invite == (invite or "").strip()))
        if team is None:
            raise NotFound("no team has that invite code.")
        user.team_id = team.id
        return team

    # ------------------------------------------------------------ uploads

    def receive(self) -> Incoming:
        return Incoming(self.root, self.config.limits.upload_bytes)

    def submit(self, user: User, phase_name: str, incoming: Incoming, filename: str,
               key: str | None = None) -> tuple[Submission, bool]:
        """Store an upload durably (file, then row) under the team's limits; (submission, created). A repeated
        ``key`` (Idempotency-Key) returns the first submission instead of a second one."""
        try:
            phase = self.config.phase(phase_name)
        except Exception:
            incoming.discard()
            raise NotFound(f"no phase {phase_name!r}.") from None
        if user.team_id is None:
            incoming.discard()
            raise Refused("join or create a team before submitting.", 409)
        if not phase.is_open() and not user.organiser:
            incoming.discard()
            raise Forbidden(f"phase {phase.name} is not open (it runs {phase.start:%Y-%m-%d %H:%M} to "
                            f"{phase.end:%Y-%m-%d %H:%M} UTC).")
        if incoming.size == 0:
            incoming.discard()
            raise Refused("the upload is empty; choose the submission zip.")
        incoming.fh.flush()
        if not zipfile.is_zipfile(incoming.path):
            incoming.discard()
            raise Refused("the upload is not a zip file. A submission is a zip holding output.txt and readme.txt "
                          "(`iqarena submission pack`).", 415)
        key = (key or "").strip()[:64] or None
        sha, _ = incoming.commit()
        filename = _clean_filename(filename)
        for attempt in range(3):
            try:
                with self.Session.begin() as s:
                    return self._insert(s, user, phase, sha, incoming.size, filename, key)
            except IntegrityError:  # a concurrent retry with the same key won the race
                if attempt == 2 or key is None:
                    raise
            except (Refused, Forbidden):  # over a limit: keep no file that no submission points to
                self._drop_unreferenced(sha)
                raise
        raise AssertionError("unreachable")

    def _drop_unreferenced(self, sha: str) -> None:
        with self.Session() as s:
            if s.scalar(select(func.count()).select_from(Submission).where(Submission.sha256 == sha)) == 0:
                stored_path(self.root, sha).unlink(missing_ok=True)

    def _insert(self, s: Session, user: User, phase: Phase, sha: str, size: int, filename: str,
                key: str | None) -> tuple[Submission, bool]:
        now = now_utc()
        # lock the team row first: the count and the insert below are serialised per team
        s.execute(update(Team).where(Team.id == user.team_id).values(last_upload_at=now))
        if key is not None:
            old = s.scalar(select(Submission).where(Submission.team_id == user.team_id,
                                                    Submission.idempotency_key == key))
            if old is not None:
                return old, False
        team = s.get(Team, user.team_id)
        if team.disqualified:
            raise Forbidden("your team is disqualified.")
        day = datetime.combine(now.date(), time(0), tzinfo=timezone.utc)
        mine = select(func.count()).select_from(Submission).where(Submission.team_id == team.id,
                                                                  Submission.phase == phase.name)
        counted = Submission.status != "failed"
        today = s.scalar(mine.where(counted, Submission.created_at >= day))
        total = s.scalar(mine.where(counted))
        failed_today = s.scalar(mine.where(Submission.status == "failed", Submission.created_at >= day))
        daily, cap = self.config.daily_limit(phase), self.config.total_limit(phase)
        if not user.organiser:
            if today >= daily:
                raise TooMany(f"your team has used its {daily} submissions for today (UTC) in phase {phase.name}; "
                              "the count starts again at 00:00 UTC. Failed submissions are not counted.")
            if total >= cap:
                raise TooMany(f"your team has used all {cap} submissions of phase {phase.name}.")
            if failed_today >= self.config.limits.failed_daily:
                raise TooMany(f"your team has {failed_today} failed submissions today (UTC), the most allowed; "
                              "check the zip with `iqarena submission check` and try again tomorrow.")
        sub = Submission(team_id=team.id, user_id=user.id, phase=phase.name, filename=filename, sha256=sha,
                         size=size, idempotency_key=key, created_at=now, status="queued", attempts=0,
                         hidden=False)
        s.add(sub)
        s.flush()
        return sub, True

    # ------------------------------------------------------------ reading

    def submission_for(self, s: Session, user: User, sub_id: int) -> Submission:
        """The submission when ``user`` may see it (its team, or an organiser); NotFound otherwise (the
        same answer as for a missing one, so ids reveal nothing)."""
        sub = s.get(Submission, sub_id)
        if sub is None or not (user.organiser or (user.team_id is not None and sub.team_id == user.team_id)):
            raise NotFound("no such submission.")
        return sub

    def file_of(self, sub: Submission) -> Path:
        return stored_path(self.root, sub.sha256)

    def scores_visible(self, sub: Submission, user: User | None) -> bool:
        if user is not None and user.organiser:
            return True
        try:
            return self.config.phase(sub.phase).scores_visible()
        except Exception:
            return False

    def view(self, sub: Submission, user: User | None, team_name: str | None = None) -> dict:
        """A submission as the viewer may see it: scores only when the phase shows them."""
        out = {"id": sub.id, "phase": sub.phase, "team": team_name, "filename": sub.filename, "size": sub.size,
               "submitted": _iso(sub.created_at), "status": sub.status, "reason": sub.reason,
               "finished": _iso(sub.finished_at), "hidden": sub.hidden, "runtime": sub.runtime, "gpu": sub.gpu,
               "extra_data": sub.extra_data, "description": sub.description}
        if sub.status == "scored" and self.scores_visible(sub, user):
            out.update(main=sub.main, srcc=sub.srcc, plcc=sub.plcc, n=sub.n, scorer_version=sub.scorer_version)
        elif sub.status == "scored":
            out["note"] = "scores of this phase are hidden until it closes"
        if user is not None and user.organiser:
            out.update(attempts=sub.attempts, sha256=sub.sha256, team_id=sub.team_id, user_id=sub.user_id)
        return out

    def team_submissions(self, s: Session, team_id: int, phase: str | None = None) -> list[Submission]:
        q = select(Submission).where(Submission.team_id == team_id)
        if phase:
            q = q.where(Submission.phase == phase)
        return list(s.scalars(q.order_by(Submission.id.desc())))

    def usage(self, s: Session, team_id: int, phase: Phase) -> dict:
        day = datetime.combine(now_utc().date(), time(0), tzinfo=timezone.utc)
        mine = select(func.count()).select_from(Submission).where(Submission.team_id == team_id,
                                                                  Submission.phase == phase.name)
        counted = Submission.status != "failed"
        return {"today": s.scalar(mine.where(counted, Submission.created_at >= day)),
                "daily": self.config.daily_limit(phase), "total": s.scalar(mine.where(counted)),
                "total_limit": self.config.total_limit(phase),
                "failed_today": s.scalar(mine.where(Submission.status == "failed", Submission.created_at >= day)),
                "failed_total": s.scalar(mine.where(Submission.status == "failed"))}

    def leaderboard(self, s: Session, phase_name: str, user: User | None) -> dict:
        """Each team's best scored, visible submission, best first; ties go to the earlier submission.
        Scores of a hidden phase before its end: for organisers only."""
        phase = self.config.phase(phase_name)
        organiser = user is not None and user.organiser
        visible = phase.scores_visible() or organiser
        rows = []
        if visible:
            q = (select(Submission, Team.name).join(Team, Team.id == Submission.team_id)
                 .where(Submission.phase == phase.name, Submission.status == "scored", Submission.hidden.is_(False),
                        Team.disqualified.is_(False)))
            best: dict[int, tuple] = {}
            for sub, team in s.execute(q):
                if sub.main is None or not math.isfinite(sub.main):
                    continue
                key = (-sub.main, sub.created_at, sub.id)
                if sub.team_id not in best or key < best[sub.team_id][0]:
                    best[sub.team_id] = (key, sub, team)
            ranked = sorted(best.values(), key=lambda t: t[0])
            digits = self.config.digits
            for rank, (_, sub, team) in enumerate(ranked, start=1):
                row = {"rank": rank, "team": team, "submission": sub.id}
                for c in self.config.columns:
                    row[c] = _column(sub, c, digits)
                rows.append(row)
        return {"phase": phase.name, "title": phase.title, "visible": visible,
                "hidden_until": None if phase.scores_visible() else _iso(phase.end),
                "columns": list(self.config.columns),
                "titles": {c: COLUMN_TITLES[c] for c in self.config.columns}, "rows": rows}

    # ------------------------------------------------------------ organiser

    def rescore(self, s: Session, sub_ids=None, phase: str | None = None) -> int:
        """Queue submissions for scoring again (the next score records the scoring code's version then)."""
        q = update(Submission).values(status="queued", reason=None, attempts=0, lease_until=None, claim=None,
                                      finished_at=None)
        if sub_ids is not None:
            q = q.where(Submission.id.in_(list(sub_ids)))
        if phase is not None:
            q = q.where(Submission.phase == phase)
        return s.execute(q).rowcount

    def export(self, s: Session, what: str, phase: str, fmt: str) -> tuple[str, str]:
        """(text, media type) of the leaderboard or all submissions of ``phase`` as CSV or JSON."""
        if fmt not in ("csv", "json"):
            raise Refused("format is csv or json.")
        self.config.phase(phase)
        if what == "leaderboard":
            board = self.leaderboard(s, phase, _ORGANISER)
            rows = board["rows"]
            fields = ["rank", "team", "submission", *board["columns"]]
        elif what == "submissions":
            q = (select(Submission, Team.name).join(Team, Team.id == Submission.team_id)
                 .where(Submission.phase == phase).order_by(Submission.id))
            fields = ["id", "team", "phase", "filename", "submitted", "status", "reason", "main", "srcc", "plcc", "n",
                      "runtime", "gpu", "extra_data", "hidden", "scorer_version", "sha256", "description"]
            rows = [{k: v for k, v in self.view(sub, _ORGANISER, team).items() if k in fields}
                    for sub, team in s.execute(q)]
        else:
            raise NotFound("export leaderboard or submissions.")
        if fmt == "json":
            return json.dumps({"phase": phase, what: rows}, indent=1), "application/json"
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue(), "text/csv"


class _Organiser:
    organiser = True
    team_id = None


_ORGANISER = _Organiser()


def _column(sub: Submission, column: str, digits: int):
    if column in ("main", "srcc", "plcc"):
        value = getattr(sub, column)
        return None if value is None else round(value, digits)
    if column == "runtime":
        return sub.runtime
    if column == "device":
        return None if sub.gpu is None else ("GPU" if sub.gpu else "CPU")
    if column == "extra_data":
        return None if sub.extra_data is None else ("Yes" if sub.extra_data else "No")
    if column == "submitted":
        return _iso(sub.created_at)
    if column == "n":
        return sub.n
    raise KeyError(column)


def _iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _clean_filename(name: str | None) -> str:
    """The uploaded file's base name, printable, at most 100 characters (shown, never used as a path)."""
    base = (name or "submission.zip").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(c for c in base if c.isprintable())[:100]
    return base or "submission.zip"
