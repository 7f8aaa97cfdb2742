"""`python -m core_api.admin grant|revoke|enable|disable|delete EMAIL` and `… list`."""

import sys

from .cli import main

sys.exit(main())
