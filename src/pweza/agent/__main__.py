import sys

from pweza.agent.entry import main

sys.exit(main())
