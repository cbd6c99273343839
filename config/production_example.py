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
"""

SESSION_COOKIE_SECURE = True
REMEMBER_COOKIE_SECURE = True
PREFERRED_URL_SCHEME = "https"
