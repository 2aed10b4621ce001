"""``python -m lcam ...``: the same as the ``lcam`` console script."""

import sys

from lcam.cli import main

sys.exit(main())
