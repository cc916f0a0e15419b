import sys

from portrait_builder.cli import main

sys.exit(main())
