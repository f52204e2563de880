"""``python -m libcoap_py`` runs the ``libcoap-py`` command line."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
