"""The static tests import the fleet table (scripts/) and their shared readers (here)."""

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
for path in (_HERE, _HERE.parents[1] / "scripts"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
