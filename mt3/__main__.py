import sys

from mt3.cli.main import main

sys.exit(main())
