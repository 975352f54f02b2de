import sys

from tljh_lock.cli import main

sys.exit(main())
