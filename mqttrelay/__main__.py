import sys

from mqttrelay.cli import main

sys.exit(main())
