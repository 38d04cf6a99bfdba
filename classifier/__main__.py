"""`python -m classifier`: the same as `routellm-classifier`."""

import sys

from classifier.cli import main

sys.exit(main())
