"""``python -m lodi_core``: the command line of :mod:`lodi_core.cli`."""

import sys

from .cli import main

sys.exit(main())
