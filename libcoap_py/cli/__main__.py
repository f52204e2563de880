"""``python -m libcoap_py.cli``: the same as the ``libcoap-py`` command."""

from __future__ import annotations

import sys

from . import main

sys.exit(main())
