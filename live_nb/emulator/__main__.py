"""``python -m live_nb.emulator``: run the Live API emulator (see ``--help``)."""

import sys

from .server import main

sys.exit(main())
