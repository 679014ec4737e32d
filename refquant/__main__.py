"""``python -m refquant``: the same as the ``refquant`` command."""
import sys

from .cli import main

sys.exit(main())
