"""Sub-commands of the ``medrobust`` CLI: each module defines NAME, HELP, ``configure(parser)`` and ``run(args)``."""
