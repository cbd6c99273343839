"""Production example: copy to the server's environment (these are environment variables).

    CRM_ENV=production
    CRM_DATABASE_URL=postgresql+psycopg2://crm:***@db.internal:5432/crm
    CRM_BROKER_URL=redis://redis.internal:6379/0
    CRM_SECRET_KEY=<64 random characters>
    CRM_ENCRYPTION_KEY=<32 random bytes, base64>
    CRM_SMTP_HOST=smtp.internal
    CRM_SMTP_PORT=25
    CRM_MAIL_FROM=crm@example.com

Several stateless web workers (gunicorn) behind a proxy, PostgreSQL, Celery workers on Redis or
RabbitMQ, and exactly one beat. The values below are applied on top of config/default.py when
CRM_ENV=production.

    crm upgrade                                   # once per deploy
    crm serve --host 0.0.0.0 --port 8000 --workers 4   # on each web host (stateless; /health)
    crm worker --no-beat                          # as many as the queue needs
    crm worker                                    # exactly one, with beat
"""

# Database connections per process (app/web/dbtuning.py): web hosts × workers × (size + overflow)
# plus the Celery workers must stay under PostgreSQL's max_connections
CRM_DB_POOL_SIZE = 5
CRM_DB_MAX_OVERFLOW = 10
CRM_DB_POOL_RECYCLE = 1800
CRM_DB_PRE_PING = 1
# a web page's statement is stopped after this long (503 查询超时); slower requests are logged
CRM_WEB_STATEMENT_TIMEOUT_MS = 30000
CRM_SLOW_REQUEST_MS = 1000
# one load balancer / reverse proxy in front of the web workers: login limits count the client's
# address from its X-Forwarded-For (set to the number of proxies; never more than there are)
CRM_PROXY_HOPS = 1

# Big lists (app/web/listing.py): count at most this many matching rows, for at most this long
CRM_LIST_COUNT_CAP = 1000
CRM_LIST_COUNT_TIMEOUT_MS = 250
# form dropdowns of links: list up to this many records, above that find them as the user types
CRM_LINK_LOOKUP_THRESHOLD = 500
# one permission query per request instead of one per menu entry and button
FAB_SECURITY_MANAGER_CLASS = "app.access.permcache.CrmSecurityManager"

# cookies over HTTPS only, out of scripts' reach, not sent by other sites' forms; the __Host- prefix
# pins the session cookie to this host (ASVS 3.4); HSTS follows from HTTPS (app.factory)
SESSION_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_NAME = "__Host-crm-session"
REMEMBER_COOKIE_SECURE = True
PREFERRED_URL_SCHEME = "https"
