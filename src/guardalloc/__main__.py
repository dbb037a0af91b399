import sys

from guardalloc.cli.main import main

sys.exit(main())
