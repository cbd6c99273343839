"""WSGI entry point for gunicorn (`crm serve`): the app for the environment's configuration."""

from app import create_app

application = create_app()
