"""WSGI entry point for gunicorn (`crm serve`): the app for the environment's configuration, as a
web process (its statements are bounded by ``CRM_WEB_STATEMENT_TIMEOUT_MS``)."""

from app import create_app

application = create_app({"CRM_WEB_PROCESS": True})
