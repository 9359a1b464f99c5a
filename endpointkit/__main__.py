"""``python -m endpointkit`` runs the CLI."""

from __future__ import annotations

import sys

from endpointkit.cli import main

sys.exit(main())
