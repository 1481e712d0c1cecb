"""API keys: who may call the signed endpoints, on which account, with which rights.

Bybit's HMAC signatures need the secret itself on the server, so a hash will not do. Secrets
are stored encrypted (Fernet: AES-128-CBC + HMAC-SHA256) with a server key that lives in the
data folder as `server.key`; the key table (`keys.db`, SQLite) never holds a secret in the
clear, and secrets are never logged. Both, and the database's -wal and -shm files, are mode
0600, and a data folder perpx creates is 0700: the server key decrypts every secret.

`perpx serve` in demo mode keeps one demo key (note "demo", 100,000 USDT of demo funds); its
secret is shown once, when created, and kept in `demo-key.json` (0600) in the data folder.

The store speaks to its database through the statements in `_SQL`, so a PostgreSQL
variant needs only another connection and placeholder style. Lookups are cached, and the
cache is checked against the database at most every `CACHE_TTL_S` seconds, by one query for
the whole store (SQLite's `data_version`, which moves whenever another connection commits):
a key revoked from the command line (another process) stops working within that time, yet a
busy server does not re-read and re-decrypt every active key twice a second. The server
closes open WebSocket sessions after asking `revoked_among` (an indexed lookup of the keys
that have sessions) about as often.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import string
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cryptography.fernet import Fernet, InvalidToken

CACHE_TTL_S = 0.5
PRIVATE_FILE = 0o600
PRIVATE_FOLDER = 0o700
DEMO_NOTE = "demo"
DEMO_FUNDS = "100000"
DEMO_KEY_FILE = "demo-key.json"
FIRST_ACCOUNT_ID = 1001  # below are the service's own accounts (the market maker is 1)
DEFAULT_RATE_LIMIT = 200  # requests per second per key (Bybit's default is lower per endpoint)
_ALPHABET = string.ascii_letters + string.digits


class Mac(Protocol):
    """A keyed HMAC-SHA256 state: copied per request, fed the payload, read as hex."""

    def copy(self) -> Mac:
        """Return an independent copy of the state."""

    def update(self, data: bytes, /) -> None:
        """Feed `data`."""

    def hexdigest(self) -> str:
        """Return the MAC so far as lowercase hex."""


def keyed_hmac(secret: bytes) -> Mac:
    """Return HMAC-SHA256 keyed with `secret`: OpenSSL's object itself where Python has it.

    `hmac.HMAC` wraps that object in pure-Python frames (its `copy` alone builds a new
    wrapper through `__new__`), ~5k instructions a signed request; the C object copies,
    updates and digests in C. The same MAC either way (tests/unit/api/test_keys_hmac.py).
    """
    try:
        from _hashlib import hmac_new  # CPython built with OpenSSL (every supported build)
    except ImportError:  # pragma: no cover - a Python without OpenSSL
        return hmac.new(secret, digestmod=hashlib.sha256)
    mac: Mac = hmac_new(secret, digestmod="sha256")
    return mac

_SQL = {
    "schema": """CREATE TABLE IF NOT EXISTS api_keys (
        api_key TEXT PRIMARY KEY, secret_enc BLOB NOT NULL, account_id INTEGER NOT NULL,
        read_only INTEGER NOT NULL, demo_funds TEXT NOT NULL, rate_limit INTEGER NOT NULL,
        note TEXT NOT NULL, created_ms INTEGER NOT NULL, revoked INTEGER NOT NULL DEFAULT 0)""",
    "insert": "INSERT INTO api_keys VALUES (?,?,?,?,?,?,?,?,0)",
    "get": "SELECT * FROM api_keys WHERE api_key = ? AND revoked = 0",
    "list": "SELECT * FROM api_keys ORDER BY created_ms, api_key",
    "revoke": "UPDATE api_keys SET revoked = 1 WHERE api_key = ? AND revoked = 0",
    # No row is revoked too: a key deleted from the table is as dead as a revoked one.
    "live_among": "SELECT api_key FROM api_keys WHERE revoked = 0 AND api_key IN ({})",
    "next_account": "SELECT coalesce(max(account_id) + 1, ?) FROM api_keys",
}


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One API key; `secret` is the decrypted secret (never print it)."""

    api_key: str
    secret: str
    account_id: int
    read_only: bool
    demo_funds: str  # USDT credited once to a new account ("" or "0": none)
    rate_limit: int  # requests per second
    note: str
    created_ms: int
    revoked: bool = False
    _mac: Mac = field(init=False, repr=False, compare=False)

    def __repr__(self) -> str:
        return (f"ApiKey(api_key={self.api_key!r}, account_id={self.account_id}, "
                f"read_only={self.read_only}, revoked={self.revoked})")

    def __post_init__(self) -> None:
        # Keyed once: a copy of it signs ~1/3 faster than keying HMAC afresh per request.
        object.__setattr__(self, "_mac", keyed_hmac(self.secret.encode()))

    def _hmac(self, payload: bytes) -> str:
        mac = self._mac.copy()
        mac.update(payload)
        return mac.hexdigest()

    def sign(self, payload: str) -> str:
        """Return the lowercase hex HMAC-SHA256 of `payload` under this key's secret."""
        return self._hmac(payload.encode())

    def verify(self, payload: bytes, signature: str) -> bool:
        """Tell whether `signature` is this key's HMAC of `payload` (constant time)."""
        if not signature.isascii():  # compare_digest refuses non-ASCII text (TypeError)
            return False
        return hmac.compare_digest(self._hmac(payload), signature.lower())


def private_folder(path: str | Path) -> Path:
    """Return `path` as a folder, creating it (and missing parents) with mode 0700.

    A folder that already exists keeps its mode: the operator chose it.
    """
    folder = Path(path)
    if not folder.exists():
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, PRIVATE_FOLDER)  # mkdir's mode is masked by the umask
    return folder


def make_private(path: Path) -> None:
    """Take group and other access away from `path`, if it exists (files of older runs)."""
    try:
        if os.stat(path).st_mode & 0o077:
            os.chmod(path, PRIVATE_FILE)
    except FileNotFoundError:
        pass


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` as a 0600 file, replacing it whole.

    The file is created 0600 before a byte is written: never readable by others, even briefly.
    """
    temporary = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(temporary, path)


def _server_key(data_dir: Path) -> bytes:
    path = data_dir / "server.key"
    try:
        key = path.read_bytes().strip()
    except FileNotFoundError:
        pass
    else:
        make_private(path)
        return key
    key = Fernet.generate_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:  # another process created it first
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as out:
        out.write(key)
    return key


def _private_database(path: Path) -> None:
    # SQLite gives the -wal and -shm files the database file's mode, so a database created
    # 0600 here keeps all three private; an older one is tightened.
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
    for name in (path.name, path.name + "-wal", path.name + "-shm"):
        make_private(path.with_name(name))


class KeyStore:
    """API keys in `<data_dir>/keys.db`, secrets encrypted with `<data_dir>/server.key`.

    `data_dir=None` keeps everything in memory (tests).
    """

    def __init__(self, data_dir: str | Path | None = None) -> None:
        if data_dir is None:
            self._fernet = Fernet(Fernet.generate_key())
            target = ":memory:"
        else:
            folder = private_folder(data_dir)
            self._fernet = Fernet(_server_key(folder))
            _private_database(folder / "keys.db")
            target = str(folder / "keys.db")
        self._db = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        if data_dir is not None:
            _private_database(Path(target))  # the -wal and -shm files WAL mode just made
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.execute(_SQL["schema"])
        self._lock = threading.Lock()
        self._cache: dict[str, ApiKey | None] = {}
        # When the cache was last checked against the database, and what it said then.
        self._checked = time.monotonic()
        self._version = self._data_version()

    def _data_version(self) -> int:
        # Called with the lock held, or before the store is shared.
        row = self._db.execute("PRAGMA data_version").fetchone()
        return int(row[0])

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def create(self, *, read_only: bool = False, demo_funds: str = "0",
               account_id: int | None = None, rate_limit: int = DEFAULT_RATE_LIMIT,
               note: str = "") -> ApiKey:
        """Create a key (on a new account unless `account_id` is given)."""
        if rate_limit <= 0:
            raise ValueError("rate_limit must be positive")
        api_key = "".join(secrets.choice(_ALPHABET) for _ in range(18))
        secret = "".join(secrets.choice(_ALPHABET) for _ in range(36))
        created_ms = time.time_ns() // 1_000_000
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if account_id is None:
                    row = self._db.execute(_SQL["next_account"], (FIRST_ACCOUNT_ID,)).fetchone()
                    account_id = max(int(row[0]), FIRST_ACCOUNT_ID)
                self._db.execute(_SQL["insert"], (
                    api_key, self._fernet.encrypt(secret.encode()), account_id, int(read_only),
                    demo_funds, rate_limit, note, created_ms))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        self._cache.pop(api_key, None)  # this connection's own commits leave data_version
        return ApiKey(api_key, secret, account_id, read_only, demo_funds, rate_limit, note,
                      created_ms)

    def _row_to_key(self, row: tuple[object, ...]) -> ApiKey | None:
        api_key, secret_enc, account_id, read_only, demo, limit, note, created, revoked = row
        assert isinstance(secret_enc, bytes) and isinstance(account_id, int)
        assert isinstance(limit, int) and isinstance(created, int)
        try:
            secret = self._fernet.decrypt(secret_enc).decode()
        except InvalidToken:
            return None  # encrypted under another server key: unusable
        return ApiKey(str(api_key), secret, account_id, bool(read_only), str(demo), limit,
                      str(note), created, bool(revoked))

    def get(self, api_key: str) -> ApiKey | None:
        """Return the live key, or None if unknown or revoked."""
        now = time.monotonic()
        if now - self._checked >= CACHE_TTL_S:
            with self._lock:
                version = self._data_version()
            self._checked = now
            if version != self._version:  # another connection wrote: forget what we read
                self._version = version
                self._cache.clear()
        try:
            return self._cache[api_key]
        except KeyError:
            pass
        if len(api_key) > 64:
            return None
        with self._lock:
            row = self._db.execute(_SQL["get"], (api_key,)).fetchone()
        key = self._row_to_key(row) if row else None
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[api_key] = key
        return key

    def list(self) -> list[ApiKey]:
        """Return every key, revoked ones included."""
        with self._lock:
            rows = self._db.execute(_SQL["list"]).fetchall()
        return [key for key in map(self._row_to_key, rows) if key is not None]

    def revoke(self, api_key: str) -> bool:
        """Revoke a key; False if it was unknown or already revoked."""
        with self._lock:
            changed = self._db.execute(_SQL["revoke"], (api_key,)).rowcount
        self._cache.pop(api_key, None)
        return bool(changed)

    def revoked_among(self, api_keys: Collection[str]) -> set[str]:
        """Return those of `api_keys` that are revoked (or gone) now, and forget them.

        Asks the database, not the cache: a revocation by another process is seen at once.
        """
        wanted = sorted(set(api_keys))
        live: set[str] = set()
        with self._lock:
            for start in range(0, len(wanted), 500):  # SQLite's bound on host parameters
                chunk = wanted[start:start + 500]
                query = _SQL["live_among"].format(",".join("?" * len(chunk)))
                live.update(str(row[0]) for row in self._db.execute(query, chunk))
        dead = set(wanted) - live
        for api_key in dead:
            self._cache.pop(api_key, None)
        return dead


@dataclass(frozen=True, slots=True)
class DemoKey:
    """The demo key of `perpx serve` in demo mode, and the file that keeps its secret."""

    key: ApiKey
    path: Path  # DATA/demo-key.json, mode 0600
    created: bool  # made by this start: the only time its secret is shown


def live_demo_key(keys: KeyStore) -> ApiKey | None:
    """Return the live (not revoked) demo key, if any."""
    return next((k for k in keys.list() if k.note == DEMO_NOTE and not k.revoked), None)


def demo_key(keys: KeyStore, data_dir: str | Path) -> DemoKey:
    """Return the demo key, creating it (and its 0600 secret file) on first use.

    A data folder from before the file existed gets the file on its next start.
    """
    path = Path(data_dir) / DEMO_KEY_FILE
    found = live_demo_key(keys)
    key = found if found is not None else keys.create(demo_funds=DEMO_FUNDS, note=DEMO_NOTE)
    if found is None or not path.exists():
        write_private(path, json.dumps({"api_key": key.api_key, "api_secret": key.secret,
                                        "account_id": key.account_id}) + "\n")
    make_private(path)
    return DemoKey(key, path, created=found is None)
