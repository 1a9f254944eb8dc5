import sys

from mtbench.cli.main import main

sys.exit(main())
