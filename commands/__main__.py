"""``python -m commands``: the same as ``infertune``."""

import sys

from commands.main import main

sys.exit(main())
