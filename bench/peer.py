"""Benchmark: our screens against Django admin over the very same table — the peer a Python team
would reach for instead.

    python -m bench.peer [--customers 20000] [--requests 40] [--db sqlite,postgresql]

Needs the bench extra (``pip install -e '.[bench]'``: Django and gunicorn). For each database the
shipped app is loaded with ``crm demo-data``'s loader; a throwaway Django project gets its models of
the same tables from ``manage.py inspectdb`` (unmanaged: Django creates only its own auth and
session tables beside ours) and a ModelAdmin showing the columns our list shows. Both are served by
gunicorn with 1 worker on loopback, each signed in as an administrator; every page pair is checked
for the expected rows (the same rows, read with SQL) before timing, then requested in turn —
ours, Django's, ours … — ``--requests`` times each, with ``Accept-Encoding: gzip`` as a browser
sends it. Printed per page: median and p95 of each, the ratio of the medians (ours ÷ Django: below 1
is ahead), and the bytes each sent (ours compressed and as HTML).
"""

from __future__ import annotations

import argparse
import gzip
import http.cookiejar
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a file (python bench/peer.py) as well as a module

from bench.common import drop_postgres_schema, fresh_app, postgres_app, postgres_url  # noqa: E402

SCHEMA = "crm_bench_peer"
ADMIN, PASSWORD = "bench_admin", "bench-Pass-123"  # noqa: S105 - a throwaway database
PAGE = 25  # rows a list page shows, ours and Django's (list_per_page)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the data -------------------------------------------------------------------------------
def load(db: str, customers: int) -> tuple[Any, str, dict[str, str]]:
    """The shipped app with ``customers`` demo customers on ``db``; (app, SQLAlchemy URL, env)."""
    from app.access.accounts import add_user
    from app.ops.demo import make_demo_data

    config = {"RATELIMIT_ENABLED": False}
    if db == "postgresql":
        drop_postgres_schema(SCHEMA)
        app = postgres_app(SCHEMA, **config)
    else:
        app = fresh_app()
    url = os.environ["CRM_DATABASE_URL"]
    started = time.perf_counter()
    make_demo_data(app, customers)
    with app.app_context():
        add_user(app, ADMIN, [app.extensions["crm"].admin_role], PASSWORD)
    print(f"{db}: {customers:,} customers (+ half as many rows of each other entity) loaded in "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    env = {**os.environ, "CRM_DATABASE_URL": url, "CRM_VAR_DIR": os.environ["CRM_VAR_DIR"], "CRM_SYNC_PERMISSIONS": "0",
           "RATELIMIT_ENABLED": "0"}
    return app, url, env


def facts(app: Any) -> dict[str, Any]:
    """What the pages show, read with SQL: the rows each page pair must hold."""
    with app.app_context():
        engine = app.extensions["crm"].db.engine
    with engine.connect() as conn:
        def names(sql: str, **params: Any) -> list[str]:
            return [r[0] for r in conn.execute(sa.text(sql), params)]

        grade = conn.execute(sa.text("SELECT grade FROM customer WHERE grade IS NOT NULL GROUP BY grade ORDER BY count(*) DESC")).scalar()
        total = conn.execute(sa.text("SELECT count(*) FROM customer")).scalar_one()
        deep = min(500, max(2, total // PAGE // 2))  # page 500, or the middle of a smaller table
        middle = names("SELECT name FROM customer ORDER BY id LIMIT 1 OFFSET :n", n=total // 2)[0]
        three, two = middle[2:5], middle[2:4]
        record = conn.execute(sa.text("SELECT c.id FROM customer c WHERE EXISTS (SELECT 1 FROM contact k WHERE k.customer_id = c.id) "
                                      "ORDER BY c.id LIMIT 1 OFFSET :n"), {"n": total // 3}).scalar_one()
        return {
            "grade": grade, "deep": deep, "three": three, "two": two, "record": record,
            "record_name": names("SELECT name FROM customer WHERE id = :i", i=record)[0],
            "by_grade": names("SELECT name FROM customer WHERE grade = :g ORDER BY name LIMIT :p", g=grade, p=PAGE),
            "deep_rows": names("SELECT name FROM customer ORDER BY code DESC, id DESC LIMIT :p OFFSET :o", p=PAGE, o=(deep - 1) * PAGE),
            "first_rows": names("SELECT name FROM customer ORDER BY code DESC, id DESC LIMIT :p", p=PAGE),
            "three_rows": names("SELECT name FROM customer WHERE name LIKE :q ORDER BY code DESC, id DESC LIMIT 5", q=f"%{three}%"),
            "two_rows": names("SELECT name FROM customer WHERE name LIKE :q ORDER BY code DESC, id DESC LIMIT 5", q=f"%{two}%"),
        }


# -- Django admin over the same tables --------------------------------------------------------
SETTINGS = """
SECRET_KEY = "bench-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
INSTALLED_APPS = ["django.contrib.admin", "django.contrib.auth", "django.contrib.contenttypes",
                  "django.contrib.sessions", "django.contrib.messages", "crmpeer"]
MIDDLEWARE = ["django.middleware.security.SecurityMiddleware", "django.contrib.sessions.middleware.SessionMiddleware",
              "django.middleware.common.CommonMiddleware", "django.middleware.csrf.CsrfViewMiddleware",
              "django.contrib.auth.middleware.AuthenticationMiddleware", "django.contrib.messages.middleware.MessageMiddleware"]
ROOT_URLCONF = "crmpeer.urls"
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True,
              "OPTIONS": {"context_processors": ["django.template.context_processors.request",
                                                 "django.contrib.auth.context_processors.auth",
                                                 "django.contrib.messages.context_processors.messages"]}}]
DATABASES = {"default": %(database)r}
USE_TZ = False
LANGUAGE_CODE = "zh-hans"
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
"""

ADMIN_PY = """
from django.contrib import admin
from django.http import JsonResponse
from django.contrib.auth.decorators import login_required

from . import models

models.AbUser.__str__ = lambda self: self.username


@admin.register(models.Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "region", "owner", "status", "grade", "value_tier", "last_contact_on")
    list_filter = ("grade",)
    search_fields = ("name",)
    ordering = ("-code", "-id")
    list_per_page = %(page)d


@login_required
def customers_json(request):
    # a minimal JSON list: what a team would write beside the admin instead of a REST framework
    rows = models.Customer.objects.select_related("owner").order_by("-code", "-id")[:%(page)d]
    return JsonResponse({"count": models.Customer.objects.count(), "result": [
        {"id": c.id, "code": c.code, "name": c.name, "region": c.region, "owner": {"id": c.owner_id, "username": c.owner.username},
         "status": c.status, "grade": c.grade, "value_tier": c.value_tier,
         "last_contact_on": c.last_contact_on.isoformat() if c.last_contact_on else None} for c in rows]})
"""

URLS_PY = """
from django.contrib import admin
from django.urls import path

from .admin import customers_json

urlpatterns = [path("admin/", admin.site.urls), path("json/customers/", customers_json)]
"""


def django_database(url: str) -> dict[str, Any]:
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": parsed.database}
    return {"ENGINE": "django.db.backends.postgresql", "NAME": parsed.database, "USER": parsed.username or "",
            "PASSWORD": parsed.password or "", "HOST": parsed.host or "", "PORT": str(parsed.port or ""),
            "OPTIONS": {"options": f"-c search_path={SCHEMA}"}}


def django_project(url: str) -> tuple[Path, dict[str, str]]:
    """A Django project whose models are ``inspectdb``'s of our customer and user tables."""
    where = Path(tempfile.mkdtemp(prefix="crmpeer-"))
    (where / "crmpeer").mkdir()
    (where / "crmpeer" / "__init__.py").write_text("")
    (where / "crmpeer" / "models.py").write_text("")
    (where / "crmpeer" / "settings.py").write_text(SETTINGS % {"database": django_database(url)})
    (where / "crmpeer" / "urls.py").write_text(URLS_PY)
    (where / "crmpeer" / "wsgi.py").write_text("import os\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'crmpeer.settings')\n"
                                               "from django.core.wsgi import get_wsgi_application\napplication = get_wsgi_application()\n")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "crmpeer.settings", "PYTHONPATH": str(where)}

    def manage(*args: str, **kw: Any) -> str:
        return subprocess.run([sys.executable, "-m", "django", *args], cwd=where, env=env, check=True,  # noqa: S603
                              capture_output=True, text=True, **kw).stdout

    models = manage("inspectdb", "customer", "ab_user")
    assert "class Customer(" in models and "class AbUser(" in models, models[:500]
    (where / "crmpeer" / "models.py").write_text(models)
    (where / "crmpeer" / "admin.py").write_text(ADMIN_PY % {"page": PAGE})
    manage("migrate", "--noinput")  # Django's own tables (users, sessions …); ours are unmanaged
    manage("shell", "-c", "from django.contrib.auth.models import User\n"
                          f"User.objects.filter(username='{ADMIN}').exists() or "
                          f"User.objects.create_superuser('{ADMIN}', 'bench@example.com', '{PASSWORD}')")
    return where, env


# -- serving and asking ---------------------------------------------------------------------
def gunicorn(app_path: str, cwd: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    exe = shutil.which("gunicorn") or str(Path(sys.executable).with_name("gunicorn"))
    server = subprocess.Popen([exe, "--workers", "1", "--bind", f"127.0.0.1:{port}", app_path], cwd=cwd, env=env,  # noqa: S603
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return server, base
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"{app_path} did not start")


class Browser:
    """A signed-in client of one server: cookies, gzip accepted as a browser does."""

    def __init__(self, base: str):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.headers: dict[str, str] = {}

    def get(self, path: str) -> tuple[float, bytes, bytes]:
        """(seconds, bytes sent, body) of GET ``path``."""
        request = urllib.request.Request(self.base + path, headers={"Accept-Encoding": "gzip", **self.headers})  # noqa: S310 - loopback
        started = time.perf_counter()
        with self.opener.open(request, timeout=60) as r:
            sent = r.read()
            seconds = time.perf_counter() - started
            body = gzip.decompress(sent) if r.headers.get("Content-Encoding") == "gzip" else sent
        return seconds, sent, body

    def sign_in(self, login_path: str, token_field: str, extra: dict[str, str]) -> None:
        _, _, page = self.get(login_path)
        token = re.search(rf'name="{token_field}"[^>]*value="([^"]+)"', page.decode()) or re.search(
            rf'value="([^"]+)"[^>]*name="{token_field}"', page.decode())
        form = {"username": ADMIN, "password": PASSWORD, **extra, **({token_field: token.group(1)} if token else {})}
        request = urllib.request.Request(self.base + login_path, data=urllib.parse.urlencode(form).encode(),  # noqa: S310 - loopback
                                         headers={"Referer": self.base + login_path})
        self.opener.open(request, timeout=60).read()


def pages(f: dict[str, Any]) -> list[tuple[str, str, str, list[str]]]:
    """(page, our path, Django's path, names both must show)."""
    q3, q2 = urllib.parse.quote(f["three"]), urllib.parse.quote(f["two"])
    return [
        ("list page 1 (grade filter, by name)", f"/customerview/list/?_flt_3_grade={f['grade']}&_oc_CustomerView=name&_od_CustomerView=asc",
         f"/admin/crmpeer/customer/?grade__exact={f['grade']}&o=2", f["by_grade"][:3]),
        (f"page {f['deep']} by number", f"/customerview/list/?page_CustomerView={f['deep'] - 1}&_exact=1",
         f"/admin/crmpeer/customer/?p={f['deep']}", f["deep_rows"][:3]),
        (f"3-character search ({f['three']})", f"/customerview/list/?_flt_2_name={q3}", f"/admin/crmpeer/customer/?q={q3}", f["three_rows"][:1]),
        (f"2-character search ({f['two']})", f"/customerview/list/?_flt_2_name={q2}", f"/admin/crmpeer/customer/?q={q2}", f["two_rows"][:1]),
        ("record page", f"/customerview/show/{f['record']}", f"/admin/crmpeer/customer/{f['record']}/change/", [f["record_name"]]),
        ("REST list page 1 vs JSON view", "/api/v1/customer/?q=(order_column:code,order_direction:desc)", "/json/customers/",
         f["first_rows"][:3]),
    ]


def shows(body: bytes, names: list[str]) -> bool:
    text = body.decode("utf-8", "replace")
    if text.lstrip().startswith("{"):
        text = json.dumps(json.loads(text), ensure_ascii=False)
    return all(n in text for n in names)


def compare(ours: Browser, theirs: Browser, f: dict[str, Any], n: int) -> list[str]:
    lines = [f"{'page':40} {'ours p50':>9} {'p95':>7} {'Django p50':>11} {'p95':>7} {'ratio':>6} {'ours KB (html)':>15} {'Django KB':>10}"]
    for name, mine, peer, expected in pages(f):
        for who, path in ((ours, mine), (theirs, peer)):
            _, _, body = who.get(path)
            if not shows(body, expected):
                raise SystemExit(f"{name}: {who.base}{path} does not show {expected}")
        timings: dict[str, list[float]] = {"ours": [], "django": []}
        sizes: dict[str, tuple[int, int]] = {}
        for i in range(n):  # interleaved, the one asked first alternating
            pair: list[tuple[str, Browser, str]] = [("ours", ours, mine), ("django", theirs, peer)]
            for key, who, path in (pair if i % 2 == 0 else pair[::-1]):
                seconds, sent, body = who.get(path)
                timings[key].append(seconds * 1000)
                sizes[key] = (len(sent), len(body))
        o, d = statistics.median(timings["ours"]), statistics.median(timings["django"])
        lines.append(f"{name:40} {o:9.1f} {percentile(timings['ours'], 0.95):7.1f} {d:11.1f} {percentile(timings['django'], 0.95):7.1f} "
                     f"{o / d:6.2f} {sizes['ours'][0] / 1024:7.1f} ({sizes['ours'][1] / 1024:5.1f}) {sizes['django'][0] / 1024:10.1f}")
    return lines


def run(db: str, customers: int, n: int) -> None:
    app, url, env = load(db, customers)
    f = facts(app)
    project, django_env = django_project(url)
    servers = []
    try:
        mine, ours_base = gunicorn("app.wsgi:application", ROOT, {**env, "PYTHONPATH": str(ROOT)})
        servers.append(mine)
        peer, django_base = gunicorn("crmpeer.wsgi:application", project, django_env)
        servers.append(peer)
        ours, theirs = Browser(ours_base), Browser(django_base)
        ours.sign_in("/login/", "csrf_token", {})
        theirs.sign_in("/admin/login/?next=/admin/", "csrfmiddlewaretoken", {"next": "/admin/"})
        token = json.loads(ours.opener.open(urllib.request.Request(  # noqa: S310 - loopback
            ours_base + "/api/v1/security/login", data=json.dumps({"username": ADMIN, "password": PASSWORD, "provider": "db"}).encode(),
            headers={"Content-Type": "application/json"}), timeout=60).read())["access_token"]
        ours.headers = {"Authorization": f"Bearer {token}"}
        print(f"\n{db}, {customers:,} customers, gunicorn 1 worker each, {n} interleaved requests per page:")
        print("\n".join(compare(ours, theirs, f, n)), flush=True)
    finally:
        for server in servers:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        shutil.rmtree(project, ignore_errors=True)
        if db == "postgresql":
            drop_postgres_schema(SCHEMA)


def main() -> None:
    parser = argparse.ArgumentParser(description=textwrap.dedent(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--db", default="sqlite,postgresql", help="sqlite, postgresql or both, comma-separated")
    args = parser.parse_args()
    try:
        import django  # noqa: F401
    except ImportError:
        raise SystemExit("Django is not installed: pip install -e '.[bench]'") from None
    for db in args.db.split(","):
        if db == "postgresql":
            postgres_url(SCHEMA)  # says what to set when CRM_TEST_POSTGRES_URL is missing
        run(db.strip(), args.customers, args.requests)


if __name__ == "__main__":
    main()
