"""``python -m structgen``: the ``structgen`` command line."""

from structgen.cli import main

raise SystemExit(main())
