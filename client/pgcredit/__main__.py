"""``python -m pgcredit`` is the ``pgcredit`` command."""

from .tools.cli import main

raise SystemExit(main())
