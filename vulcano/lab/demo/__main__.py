"""`python -m vulcano.lab.demo`: see the package's doc."""

import sys

from vulcano.lab.demo import main

sys.exit(main())
