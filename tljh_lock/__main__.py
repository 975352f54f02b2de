import sys

from tljh_lock.cli.main import main

sys.exit(main())
