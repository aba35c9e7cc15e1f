"""``python -m condense.cli`` runs the ``condense`` command."""

import sys

from condense.cli import main

if __name__ == "__main__":  # importing this module (e.g. a walk over every module) must not run the command
    sys.exit(main())
