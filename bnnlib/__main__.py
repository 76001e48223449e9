from bnnlib.cli import main

raise SystemExit(main())
