import sys

from guardalloc.cli import main

sys.exit(main())
