"""`python -m videogen` runs the library's stage commands; the `videogen` console script (`pipeline.cli`) adds the
orchestration ones."""

import sys

from videogen.cli import main

sys.exit(main())
