"""``python -m lcam.report DIR [DIR ...] [--out OUT]``."""

import sys

from lcam.report.command import main

sys.exit(main())
