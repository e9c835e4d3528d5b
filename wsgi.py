"""gunicorn's entry: ``gunicorn -c gunicorn.conf.py wsgi:app``."""

from owaction.rest import create_app

app = create_app()
