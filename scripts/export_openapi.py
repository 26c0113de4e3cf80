"""Write the dialer API's OpenAPI document (as the app serves it with default settings) to
docs/openapi.json; tests/dialer/test_openapi_contract.py checks the committed file matches.

    python scripts/export_openapi.py [--check]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from voicebot_dialer.openapi_doc import served_document_json

DOCUMENT_PATH = Path(__file__).resolve().parents[1] / "docs" / "openapi.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only say whether the committed file is current")
    parser.add_argument("--out", type=Path, default=DOCUMENT_PATH)
    args = parser.parse_args()
    text = served_document_json()
    if args.check:
        current = args.out.exists() and args.out.read_text() == text
        print(f"{args.out}: {'up to date' if current else 'stale: run python scripts/export_openapi.py'}")
        return 0 if current else 1
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
