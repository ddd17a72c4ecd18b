"""``python -m live_nb.emulator``: run the Live API emulator (see ``--help``)."""

import sys

from .cli import main

sys.exit(main())
