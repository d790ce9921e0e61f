"""The challenge platform: host an IQA challenge end to end (``iqarena challenge``).

- :mod:`.config`: ``challenge.toml`` (phases with UTC times, label files, leaderboard, limits)
- :mod:`.db`: the database (SQLAlchemy 2; Alembic migrations in ``migrations/``), which is also the queue
- :mod:`.worker`: scoring workers (atomic claims, leases, a time limit, a forked child per job)
- :mod:`.scoring`: the one scoring path: :func:`iqarena.submission.check_submission` + :func:`iqarena.evaluate.evaluate`
- :mod:`.app`: the JSON API and the pages; :mod:`.server`: ``serve`` (uvicorn + supervised workers)
- :mod:`.demo`: a ready demo challenge from the bundled sample images

Needs the ``server`` extra: ``pip install 'iqarena[server]'``. See ``docs/challenge.md``.
"""

from __future__ import annotations

from pathlib import Path


def init_challenge(root: str | Path, config: str | Path, url: str | None = None):
    """Create (or update) a challenge folder from a config file and bring its database schema up to date."""
    from .config import install_config
    from .service import Challenge

    install_config(config, root)
    return Challenge.open(root, url)


def add_organiser(root: str | Path, name: str, password: str | None, url: str | None = None) -> str:
    """Create organiser ``name`` with ``password``, or make an existing user an organiser; returns a message."""
    from sqlalchemy import select

    from .auth import Refused, create_user
    from .db import User
    from .service import Challenge

    ch = Challenge.open(root, url)
    with ch.Session.begin() as s:
        user = s.scalar(select(User).where(User.name == name.lower()))
        if user is not None:
            user.organiser = True
            return f"{user.name} is now an organiser"
        if password is None:
            raise Refused(f"no user {name!r}; give a password to create the organiser account.")
        create_user(s, name, password, organiser=True)
    return f"created organiser {name.lower()}"
