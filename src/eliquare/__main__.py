from eliquare.cli import main

raise SystemExit(main())
