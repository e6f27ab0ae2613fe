import sys

from parts_mcp.cli import main

sys.exit(main())
