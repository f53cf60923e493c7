"""Partner and hub credentials: generated, hashed the broker's way, stored, and read back.

A credential is looked up by broker account (an organisation's account is its id unless the
directory says otherwise):

1. ``LIAISON_PASSWORD_<ACCOUNT>`` in the environment (upper case, ``-`` and ``.`` as ``_``) —
   for deployments whose secrets come from a vault or an orchestrator;
2. ``<LIAISON_CREDENTIALS_DIR>/<account>.password`` — one file per account, mode 0600, in a
   directory of mode 0700, written atomically.

The broker only ever receives ``password_hash`` (RabbitMQ's ``rabbit_password_hashing_sha256``:
base64 of a 4-byte salt followed by SHA-256 of salt + UTF-8 password), so the cleartext does not
cross the management HTTP API.
"""

import base64
import enum
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from liaison.common.errors import ConfigError
from liaison.directory.settings import DEFAULT_CREDENTIALS_DIR

HASHING_ALGORITHM: Final = "rabbit_password_hashing_sha256"
SALT_BYTES: Final = 4
_ACCOUNT = re.compile(r"^[a-z][a-z0-9._-]{1,63}$")


class Source(enum.StrEnum):
    """Where a credential was found."""

    ENVIRONMENT = "environment"
    FILE = "file"


def generate_password() -> str:
    """A fresh random password: 32 bytes from ``secrets``, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


def password_hash(password: str, salt: bytes | None = None) -> str:
    """The value RabbitMQ stores for ``password`` with ``rabbit_password_hashing_sha256``."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    if len(salt) != SALT_BYTES:
        raise ValueError(f"salt must be {SALT_BYTES} bytes")
    digest = hashlib.sha256(salt + password.encode("utf-8")).digest()
    return base64.b64encode(salt + digest).decode("ascii")


def hash_matches(password: str, stored_hash: str) -> bool:
    """Whether ``password`` is the one behind a broker-stored sha256 ``stored_hash``."""
    try:
        raw = base64.b64decode(stored_hash, validate=True)
    except ValueError:
        return False
    if len(raw) != SALT_BYTES + hashlib.sha256().digest_size:
        return False
    return hmac.compare_digest(password_hash(password, raw[:SALT_BYTES]), stored_hash)


def environment_variable(account: str) -> str:
    """The variable that may hold ``account``'s password."""
    return "LIAISON_PASSWORD_" + re.sub(r"[^A-Za-z0-9]", "_", account).upper()


class CredentialStore:
    """Passwords by broker account, from the environment first, then from files."""

    def __init__(self, directory: Path, env: Mapping[str, str] | None = None) -> None:
        self.directory = directory
        self._env = os.environ if env is None else env

    def path(self, account: str) -> Path:
        """The file that holds ``account``'s password."""
        if not _ACCOUNT.match(account):
            raise ConfigError(f"{account!r} is not a broker account name")
        return self.directory / f"{account}.password"

    def source(self, account: str) -> Source | None:
        """Where ``account``'s password comes from, or None when none is stored."""
        if self._env.get(environment_variable(account)):
            return Source.ENVIRONMENT
        return Source.FILE if self.path(account).is_file() else None

    def get(self, account: str) -> str | None:
        """``account``'s password, or None when none is stored."""
        from_env = self._env.get(environment_variable(account))
        if from_env:
            return from_env
        try:
            return self.path(account).read_text(encoding="utf-8").strip() or None
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConfigError(
                f"cannot read the credential of {account!r}: {exc.strerror}"
            ) from None

    def put(self, account: str, password: str) -> Path:
        """Store ``password`` for ``account`` (0600 file, 0700 directory), replacing any."""
        if self.source(account) is Source.ENVIRONMENT:
            raise ConfigError(
                f"the password of {account!r} comes from {environment_variable(account)}; "
                "change it there"
            )
        target = self.path(account)
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.directory, 0o700)
            temporary = target.with_name(f".{target.name}.{secrets.token_hex(4)}")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(password + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, target)
        except OSError as exc:
            raise ConfigError(
                f"cannot store the credential of {account!r} in {self.directory}: {exc.strerror}"
            ) from None
        return target

    def delete(self, account: str) -> None:
        """Forget ``account``'s stored password file, if any."""
        self.path(account).unlink(missing_ok=True)


def load_credential(account: str, env: Mapping[str, str] | None = None) -> str:
    """The password of broker ``account`` (an org id or the hub's account), for the hub and SDK.

    Reads ``LIAISON_PASSWORD_<ACCOUNT>``, else the file under ``LIAISON_CREDENTIALS_DIR``; a
    missing credential is a ConfigError naming both places.
    """
    source = os.environ if env is None else env
    directory = Path(source.get("LIAISON_CREDENTIALS_DIR") or DEFAULT_CREDENTIALS_DIR)
    store = CredentialStore(directory, source)
    password = store.get(account)
    if password is None:
        raise ConfigError(
            f"no credential for {account!r}: set {environment_variable(account)} "
            f"or provision it into {store.path(account)}"
        )
    return password
