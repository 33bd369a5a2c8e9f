"""``python -m hil.cli``: the same entry point as the ``hil`` script."""

import sys

from hil.cli.main import main

sys.exit(main())
