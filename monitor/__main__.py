"""``python -m monitor`` = ``qmon``."""

from monitor.cli import main

raise SystemExit(main())
