"""``python -m condense.cli`` runs the ``condense`` command."""

import sys

from condense.cli import main

sys.exit(main())
