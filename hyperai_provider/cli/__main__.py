import sys

from hyperai_provider.cli import main

sys.exit(main())
