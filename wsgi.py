"""gunicorn's entry: ``gunicorn -c gunicorn.conf.py wsgi:app`` (the app is owaction.rest.wsgi)."""

from owaction.rest.wsgi import app  # noqa: F401
