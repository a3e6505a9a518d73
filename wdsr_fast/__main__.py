"""``python -m wdsr_fast``: the ``wdsr-fast`` command line."""

import sys

from wdsr_fast.app.cli import main

sys.exit(main())
