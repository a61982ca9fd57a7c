"""``python -m medrobust …`` (and ``torchrun … -m medrobust …``): the ``medrobust`` command."""

import sys

from medrobust.cli import main

if __name__ == "__main__":
    sys.exit(main())
