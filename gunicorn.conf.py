# gunicorn's configuration lives in the package (owaction/gunicorn_conf.py, which patches
# gevent first); this file lets `gunicorn -c gunicorn.conf.py wsgi:app` run from a checkout.
from owaction.gunicorn_conf import *  # noqa: F403
