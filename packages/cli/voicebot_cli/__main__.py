from voicebot_cli.main import main

raise SystemExit(main())
