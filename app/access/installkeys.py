"""A development install's own secrets. Without ``CRM_SECRET_KEY`` or ``CRM_ENCRYPTION_KEY`` in the
environment, ``CRM_ENV=development`` takes them from ``<CRM_VAR_DIR>/install-keys.json``: random,
made once by the first process that needs them (file mode 0600) and announced then, with a line on
backing up the encryption key. The keys written in ``config/default.py``, which every install
shared before, are public: anyone could sign a session or token as any user with them.

Values the public encryption key encrypted stay readable (it is kept as the old key) until the
install's first ``crm upgrade`` / ``crm up`` re-encrypts them with its own key
(:func:`app.ops.keys.move_off_public_key`) and notes it here, after which it opens nothing."""

from __future__ import annotations

import json
import os
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.messages import msg
from config.default import DEV_ENCRYPTION_KEY, ConfigError

FILE = "install-keys.json"


@dataclass(frozen=True)
class InstallKeys:
    secret_key: str
    encryption_key: str
    moved: bool  # the database's values under the public key were re-encrypted with this one


def key_file(var: str | Path) -> Path:
    return Path(var) / FILE


def install_secrets(config: Mapping[str, Any]) -> dict[str, str]:
    """The settings a development install takes from its key file: each secret ``config`` (the
    environment, or the caller) leaves empty; with the key file's encryption key, the public key
    as ``CRM_OLD_ENCRYPTION_KEY`` until the values it encrypted were moved. Outside development,
    nothing: there the secrets must be given (:func:`app.factory._refuse_development_secrets`)."""
    if config.get("CRM_ENV") != "development" or (config.get("SECRET_KEY") and config.get("CRM_ENCRYPTION_KEY")):
        return {}
    keys = read_or_make(config["CRM_VAR_DIR"])
    found: dict[str, str] = {}
    if not config.get("SECRET_KEY"):
        found["SECRET_KEY"] = keys.secret_key
    if not config.get("CRM_ENCRYPTION_KEY"):
        found["CRM_ENCRYPTION_KEY"] = keys.encryption_key
        if not keys.moved and not config.get("CRM_OLD_ENCRYPTION_KEY"):
            found["CRM_OLD_ENCRYPTION_KEY"] = DEV_ENCRYPTION_KEY
    return found


def read_or_make(var: str | Path) -> InstallKeys:
    """The install's keys; made (and announced on stderr) when there are none yet. Two processes
    starting together agree: the file appears whole, once, and the later one reads it."""
    path = key_file(var)
    if not path.exists():
        made = InstallKeys(secrets.token_urlsafe(48), secrets.token_urlsafe(32), moved=False)
        if _write(path, made, replace=False):
            print(msg("已为本机生成密钥,保存在 %(path)s(仅所有者可读)", path=path), file=sys.stderr)
            print(f"  CRM_ENCRYPTION_KEY={made.encryption_key}", file=sys.stderr)
            print(msg("请备份加密密钥(上面一行或该文件):没有它,加密字段将无法读取"), file=sys.stderr)
            return made
    return _read(path)


def mark_moved(var: str | Path) -> None:
    """Note that the values the public key encrypted were re-encrypted with the install's key."""
    keys = _read(key_file(var))
    _write(key_file(var), InstallKeys(keys.secret_key, keys.encryption_key, moved=True), replace=True)


def _read(path: Path) -> InstallKeys:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return InstallKeys(str(data["CRM_SECRET_KEY"]), str(data["CRM_ENCRYPTION_KEY"]), bool(data.get("moved_off_public_key")))
    except (OSError, ValueError, KeyError, TypeError) as exc:  # never made anew: the data needs this key
        raise ConfigError(msg("无法读取本机密钥文件 %(path)s:%(error)s — 请从备份恢复它,或在环境变量中设置 CRM_SECRET_KEY 和 "
                              "CRM_ENCRYPTION_KEY", path=path, error=exc)) from None


def _write(path: Path, keys: InstallKeys, replace: bool) -> bool:
    """Write ``keys`` to ``path`` readable by its owner only; without ``replace``, only when no
    other process made it first (False then)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"CRM_SECRET_KEY": keys.secret_key, "CRM_ENCRYPTION_KEY": keys.encryption_key,
                       "moved_off_public_key": keys.moved,
                       "note": "keep a copy of CRM_ENCRYPTION_KEY: without it the encrypted fields cannot be read"}, indent=1)
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), 0o600)  # whatever the umask
            f.write(text + "\n")
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(draft, path)
            return True
        try:
            os.link(draft, path)  # appears whole or not at all, and never over another process's keys
        except FileExistsError:
            return False
        return True
    finally:
        draft.unlink(missing_ok=True)
