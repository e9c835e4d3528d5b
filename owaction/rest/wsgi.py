"""The REST door's WSGI application, for gunicorn (``owaction.rest.wsgi:app``)."""

from owaction.rest import create_app

app = create_app()
