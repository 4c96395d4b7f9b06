import sys

from mcu_dc.cli import main

sys.exit(main())
