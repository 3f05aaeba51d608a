import sys

from gradpath.cli import main

sys.exit(main())
