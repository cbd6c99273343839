"""Issue 30 item 4: no shared secrets by default. A development install signs sessions and tokens
and encrypts fields with its own random keys (``CRM_VAR_DIR/install-keys.json``, mode 0600), not
the public ones written in config/default.py; a database those encrypted keeps reading, and its
first upgrade re-encrypts them with the install's key; production still refuses missing secrets."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import jwt
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from app.access import crypto
from app.access.accounts import add_user
from app.access.installkeys import install_secrets, key_file, read_or_make
from config.default import DEV_ENCRYPTION_KEY, DEV_SECRET_KEY, ConfigError
from tests.conftest import ADMIN_PASSWORD, api_token, login

PASSWORD = "secure-Pass-1"  # noqa: S105 - test-only
FORMULA = "旧库配方:环氧树脂 55%,固化剂 20%"


def test_a_fresh_var_dir_gets_its_own_random_keys_readable_by_its_owner_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    var = tmp_path / "var"  # not there yet
    was = os.umask(0)  # the mode is the file's own, whatever the umask
    try:
        keys = read_or_make(var)
    finally:
        os.umask(was)
    path = key_file(var)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len({keys.secret_key, keys.encryption_key, DEV_SECRET_KEY, DEV_ENCRYPTION_KEY}) == 4
    assert min(len(keys.secret_key), len(keys.encryption_key)) >= 43 and not keys.moved  # 32 random bytes and more
    said = capsys.readouterr().err
    assert str(path) in said and f"CRM_ENCRYPTION_KEY={keys.encryption_key}" in said
    assert "back up the encryption key" in said and "without it the encrypted fields cannot be read" in said
    assert keys.secret_key not in said  # nothing to back up, so never in a log
    assert read_or_make(var) == keys and capsys.readouterr().err == ""  # made once, said once
    other = read_or_make(tmp_path / "another-install")
    assert other.secret_key != keys.secret_key and other.encryption_key != keys.encryption_key


def test_the_environment_wins_and_only_development_uses_a_key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    given = {"CRM_ENV": "development", "CRM_VAR_DIR": str(tmp_path), "SECRET_KEY": "s" * 64, "CRM_ENCRYPTION_KEY": "k" * 44}
    assert install_secrets(given) == {} and not key_file(tmp_path).exists()
    half = install_secrets({**given, "CRM_ENCRYPTION_KEY": ""})
    assert set(half) == {"CRM_ENCRYPTION_KEY", "CRM_OLD_ENCRYPTION_KEY"} and half["CRM_ENCRYPTION_KEY"] == read_or_make(tmp_path).encryption_key
    production = tmp_path / "production"
    assert install_secrets({**given, "CRM_ENV": "production", "CRM_VAR_DIR": str(production), "SECRET_KEY": "", "CRM_ENCRYPTION_KEY": ""}) == {}
    monkeypatch.setenv("CRM_ENV", "production")
    monkeypatch.setenv("CRM_VAR_DIR", str(production))
    monkeypatch.delenv("CRM_SECRET_KEY", raising=False)
    monkeypatch.delenv("CRM_ENCRYPTION_KEY", raising=False)
    from app import create_app

    with pytest.raises(ConfigError, match="set CRM_SECRET_KEY and CRM_ENCRYPTION_KEY"):
        create_app()
    crypto._keys.clear()  # noqa: SLF001 - a process that built no app (an upgrade re-encrypting a column)
    with pytest.raises(ConfigError, match="set CRM_ENCRYPTION_KEY"):
        crypto.encrypt("x")
    assert not production.exists(), "production never makes keys of its own"


def test_an_unreadable_key_file_is_refused_not_replaced(tmp_path: Path) -> None:
    key_file(tmp_path).write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="restore it from a backup"):
        read_or_make(tmp_path)
    assert key_file(tmp_path).read_text(encoding="utf-8") == "{not json"


def _resigned(claims: dict[str, Any], secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {jwt.encode(claims, secret, algorithm='HS256')}"}


def test_a_token_or_cookie_signed_with_the_public_secret_is_refused(app: Any) -> None:
    """The attack of the issue: a salesperson's JWT re-signed with sub=<the administrator> using the
    secret written in config/default.py; the session cookie likewise. The same forgery signed with
    the install's own secret is accepted: only the secret stops it."""
    from flask import Flask
    from flask.sessions import SecureCookieSessionInterface

    assert app.config["SECRET_KEY"] not in ("", DEV_SECRET_KEY)
    add_user(app, "keys_sales", ["业务员"], PASSWORD, departments=["华东一部"])
    admin = api_token(app.test_client(), "admin", ADMIN_PASSWORD)
    pk = app.test_client().post("/api/v1/customer/", json={"name": "管理员的客户", "urgency": "normal"}, headers=admin).json["id"]
    with app.app_context():
        admin_id = str(app.extensions["crm"].appbuilder.sm.find_user(username="admin").id)
    c = app.test_client()
    sales = api_token(c, "keys_sales", PASSWORD)
    assert c.get(f"/api/v1/customer/{pk}", headers=sales).status_code == 404  # out of the salesperson's scope
    claims = {**jwt.decode(sales["Authorization"].split()[1], app.config["SECRET_KEY"], algorithms=["HS256"]), "sub": admin_id}
    assert c.get(f"/api/v1/customer/{pk}", headers=_resigned(claims, DEV_SECRET_KEY)).status_code in (401, 422)
    assert c.get(f"/api/v1/customer/{pk}", headers=_resigned(claims, app.config["SECRET_KEY"])).status_code == 200

    browser = app.test_client()
    login(browser, "keys_sales", PASSWORD)
    stolen = browser.get_cookie("session")
    assert stolen is not None
    session = SecureCookieSessionInterface().get_signing_serializer(app).loads(stolen.value)
    signer = Flask("forger")
    for secret, admitted in ((DEV_SECRET_KEY, False), (app.config["SECRET_KEY"], True)):
        signer.secret_key = secret
        forger = app.test_client()
        forger.set_cookie("session", SecureCookieSessionInterface().get_signing_serializer(signer).dumps({**session, "_user_id": admin_id}))
        page = forger.get(f"/customerview/show/{pk}")
        assert (page.status_code == 200 and "管理员的客户" in page.text) is admitted, (secret == DEV_SECRET_KEY, page.status_code)


def _stored(url: str) -> tuple[str, str]:
    """The formula as stored, and its sealed copy in the audit trail's create entry."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            value = conn.execute(sa.text("SELECT formula_content FROM confidential_formula")).scalar_one()
            trail = conn.execute(sa.text("SELECT changes FROM crm_audit WHERE entity = 'confidential_formula' AND action = 'create'")).scalar_one()
    finally:
        engine.dispose()
    return value, json.loads(trail)["formula_content"][1]


def _read_formula(application: Any) -> str:
    c = application.test_client()
    token = api_token(c, "admin", ADMIN_PASSWORD)
    [pk] = c.get("/api/v1/confidential_formula/", headers=token).json["ids"]
    return str(c.get(f"/api/v1/confidential_formula/{pk}", headers=token).json["result"]["formula_content"])


def _dispose(application: Any) -> None:
    with application.app_context():
        application.extensions["crm"].db.session.remove()
        application.extensions["crm"].db.engine.dispose()


@pytest.mark.slow  # two upgrades (each syncing the rights in a child process)
def test_a_development_database_of_the_public_key_reads_on_and_is_moved_off_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from app import create_app
    from app.access.accounts import create_first_admin
    from app.cli import main
    from app.migrate.create import create_schema

    url = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    var = tmp_path / "var"
    monkeypatch.setenv("CRM_DATABASE_URL", url)
    monkeypatch.setenv("CRM_VAR_DIR", str(var))
    base = {"SQLALCHEMY_DATABASE_URI": url, "TESTING": True, "RATELIMIT_ENABLED": False}
    # as earlier versions ran it: the public keys of config/default.py
    before = create_app({**base, "SECRET_KEY": DEV_SECRET_KEY, "CRM_ENCRYPTION_KEY": DEV_ENCRYPTION_KEY})
    create_schema(before)
    create_first_admin(before, "admin", ADMIN_PASSWORD)
    admin = api_token(before.test_client(), "admin", ADMIN_PASSWORD)
    customer = before.test_client().post("/api/v1/customer/", json={"name": "旧库客户", "urgency": "normal"}, headers=admin).json["id"]
    r = before.test_client().post("/api/v1/confidential_formula/", json={
        "product_name": "旧库涂料", "customer": customer, "formula_version": 1, "formula_content": FORMULA, "review_due": "2027-06-30"},
        headers=admin)
    assert r.status_code == 201, r.text
    _dispose(before)
    public = [crypto.derive(DEV_ENCRYPTION_KEY)]
    assert all(crypto.decrypt(v, public) == FORMULA for v in _stored(url)) and not key_file(var).exists()

    # this version, on the same database: its own keys, and what the public key encrypted still reads
    switched = create_app(base)
    keys = read_or_make(var)
    assert (switched.config["SECRET_KEY"], switched.config["CRM_ENCRYPTION_KEY"]) == (keys.secret_key, keys.encryption_key)
    assert _read_formula(switched) == FORMULA
    _dispose(switched)

    # the first upgrade (what `crm up` starts with) re-encrypts them with the install's key, once
    first = CliRunner().invoke(main, ["upgrade"], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    assert "re-encrypted with this install's key: 2" in first.output, first.output  # the field and its audit copy
    own = [crypto.derive(keys.encryption_key)]
    for value in _stored(url):
        assert crypto.decrypt(value, own) == FORMULA
        with pytest.raises(ValueError):
            crypto.decrypt(value, public)  # the public key opens nothing any more
    assert read_or_make(var).moved
    again = CliRunner().invoke(main, ["upgrade"], catch_exceptions=False)
    assert again.exit_code == 0 and "re-encrypted" not in again.output, again.output
    after = create_app(base)
    assert crypto._keys == own  # noqa: SLF001 - the public key is no longer even tried
    assert _read_formula(after) == FORMULA
    _dispose(after)
