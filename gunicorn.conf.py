# gunicorn's configuration lives in the package (owaction/rest/gunicorn_conf.py, which patches
# gevent first); this file lets `gunicorn -c gunicorn.conf.py wsgi:app` run from a checkout.
from owaction.rest.gunicorn_conf import *  # noqa: F403
