"""``python -m reprolib``: see :mod:`reprolib.cli`."""
import sys

from reprolib.cli import main

sys.exit(main())
