from agentvisor.cli.daemon import main

raise SystemExit(main())
