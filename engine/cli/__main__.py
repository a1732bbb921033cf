"""``python -m engine.cli ...`` runs the ``mlops`` command."""

import sys

from .app import main

sys.exit(main())
