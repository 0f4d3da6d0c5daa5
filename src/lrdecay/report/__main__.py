"""``python -m lrdecay.report``: the same as the ``lrdecay-report`` command."""

import sys

from lrdecay.report.command import main

sys.exit(main())
