import sys

from nfgan.cli import main

sys.exit(main())
