from voicebot_emulator.cli import main

raise SystemExit(main())
