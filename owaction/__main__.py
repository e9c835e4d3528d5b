"""``python -m owaction``: the ``owaction`` command."""

from owaction.cli import main

raise SystemExit(main())
