"""App Engine's entry point: `gunicorn appengine.main:app`."""

from appengine import create_app

app = create_app()
