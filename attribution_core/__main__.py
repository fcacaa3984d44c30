"""``python -m attribution_core`` is the ``attribute`` command."""

import sys

from .cli import main

sys.exit(main())
