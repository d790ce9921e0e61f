"""Accounts: argon2 password hashes, login sessions with CSRF tokens, API tokens stored hashed, a login rate limit."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import timedelta
from functools import lru_cache

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from .config import now_utc
from .db import ApiToken, LoginAttempt, LoginSession, User

SESSION_DAYS = 14
LOGIN_WINDOW = timedelta(minutes=15)
LOGIN_FAILS_PER_NAME = 5
LOGIN_FAILS_PER_IP = 30
USER_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,32}$")
MIN_PASSWORD = 8
TOKEN_PREFIX = "iqa_"


class Refused(Exception):
    """A request refused: ``status`` is the HTTP status, the message is safe to show."""

    status = 400

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        if status is not None:
            self.status = status


class NotFound(Refused):
    status = 404


class Forbidden(Refused):
    status = 403


class TooMany(Refused):
    status = 429


@lru_cache(maxsize=1)
def _hasher():
    from pwdlib import PasswordHash
    from pwdlib.hashers.argon2 import Argon2Hasher

    return PasswordHash((Argon2Hasher(),))


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password: str, hashed: str) -> bool:
    try:
        return _hasher().verify(password, hashed)
    except Exception:  # noqa: BLE001 - a malformed hash is a failed login
        return False


def digest(token: str) -> str:
    """What is stored for a session or API token: its SHA-256 (the tokens are 256-bit random)."""
    return hashlib.sha256(token.encode()).hexdigest()


def check_new_user(name: str, password: str) -> str:
    if not USER_NAME.match(name or ""):
        raise Refused("a user name is 3-32 letters, digits, '.', '_' or '-'.")
    if len(password or "") < MIN_PASSWORD:
        raise Refused(f"a password has at least {MIN_PASSWORD} characters.")
    if len(password) > 1024:
        raise Refused("a password has at most 1024 characters.")
    return name.lower()


def create_user(s: Session, name: str, password: str, organiser: bool = False) -> User:
    name = check_new_user(name, password)
    if s.scalar(select(User.id).where(User.name == name)) is not None:
        raise Refused("that user name is taken; choose another.", 409)
    user = User(name=name, password_hash=hash_password(password), organiser=organiser, created_at=now_utc())
    s.add(user)
    s.flush()
    return user


def login(s: Session, name: str, password: str, ip: str) -> User:
    """The user, or Refused (the same message for a wrong name and a wrong password); TooMany after
    repeated failures for the name or the address within the window."""
    name = (name or "").lower()[:64]
    since = now_utc() - LOGIN_WINDOW
    s.execute(delete(LoginAttempt).where(LoginAttempt.at < since - LOGIN_WINDOW))
    by_name = s.scalar(select(func.count()).select_from(LoginAttempt).where(LoginAttempt.name == name,
                                                                               LoginAttempt.at >= since))
    by_ip = s.scalar(select(func.count()).select_from(LoginAttempt).where(LoginAttempt.ip == ip,
                                                                             LoginAttempt.at >= since))
    if by_name >= LOGIN_FAILS_PER_NAME or by_ip >= LOGIN_FAILS_PER_IP:
        raise TooMany("too many failed logins; wait 15 minutes and try again.")
    user = s.scalar(select(User).where(User.name == name))
    if user is None or not verify_password(password or "", user.password_hash):
        s.add(LoginAttempt(name=name, ip=ip[:64], at=now_utc()))
        s.commit()
        raise Refused("wrong user name or password.", 401)
    return user


def start_session(s: Session, user: User) -> str:
    """A new login session; returns the cookie value (only its hash is stored)."""
    token = secrets.token_urlsafe(32)
    s.add(LoginSession(token_hash=digest(token), csrf=secrets.token_urlsafe(32), user_id=user.id,
                       expires_at=now_utc() + timedelta(days=SESSION_DAYS)))
    return token


def session_user(s: Session, cookie: str | None) -> tuple[User, LoginSession] | tuple[None, None]:
    if not cookie or len(cookie) > 200:
        return None, None
    row = s.scalar(select(LoginSession).where(LoginSession.token_hash == digest(cookie)))
    if row is None or row.expires_at <= now_utc():
        return None, None
    return s.get(User, row.user_id), row


def end_session(s: Session, cookie: str | None) -> None:
    if cookie:
        s.execute(delete(LoginSession).where(LoginSession.token_hash == digest(cookie)))


def csrf_ok(session: LoginSession | None, given: str | None) -> bool:
    return session is not None and given is not None and hmac.compare_digest(session.csrf, given)


def create_token(s: Session, user: User, label: str = "") -> str:
    """A new API token for ``user``; the text is shown once, only its hash is stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    s.add(ApiToken(token_hash=digest(token), prefix=token[:10], label=label.strip()[:64], user_id=user.id,
                   created_at=now_utc()))
    s.flush()
    return token


def token_user(s: Session, token: str | None) -> User | None:
    if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = s.scalar(select(ApiToken).where(ApiToken.token_hash == digest(token), ApiToken.revoked_at.is_(None)))
    return None if row is None else s.get(User, row.user_id)


def revoke_token(s: Session, user: User, token_id: int) -> None:
    row = s.get(ApiToken, token_id)
    if row is None or row.user_id != user.id:
        raise NotFound("no such token.")
    row.revoked_at = row.revoked_at or now_utc()
