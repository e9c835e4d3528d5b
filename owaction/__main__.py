from owaction.cli import main

raise SystemExit(main())
