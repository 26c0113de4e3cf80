#!/usr/bin/env python3
"""The project's source folders, read from pyproject.toml (the only place they are listed).

Nothing is pip-installed: the dev venv lives outside the checkout and is shared by every clone
with the same lock, so the folders go on PYTHONPATH instead (a .pth file inside images).

  scripts/pythonpath.py                  dev PYTHONPATH: every source folder, absolute, ':'-joined
  scripts/pythonpath.py images           the image names, one a line
  scripts/pythonpath.py image NAME       the folders one image holds, one a line
  scripts/pythonpath.py image-trees OUT  (image build) OUT/<image>/app/<folder> for each folder the
                                         image holds, plus OUT/<image>/<site-packages>/voicebot.pth

Source folders: [tool.pytest.ini_options] pythonpath minus its testpaths (pytest reads that list
itself). Images: [tool.voicebot.images], each a subset of the source folders. Standard library
only, so the Makefile can run it before the venv exists.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import sysconfig
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APP_DIR = "/app"  # where the images keep the sources (docker/Dockerfile: WORKDIR /app)
PTH_NAME = "voicebot.pth"


def load(root: Path = ROOT) -> tuple[list[str], dict[str, list[str]]]:
    """(source folders, {image: its folders}); exits with a message when they disagree."""
    config = tomllib.loads((root / "pyproject.toml").read_text())
    pytest_ini = config["tool"]["pytest"]["ini_options"]
    sources = [p for p in pytest_ini["pythonpath"] if p not in pytest_ini.get("testpaths", [])]
    images = config["tool"]["voicebot"]["images"]
    for image, folders in images.items():
        unknown = [f for f in folders if f not in sources]
        if unknown:
            sys.exit(f"pyproject.toml: image {image} lists {unknown}, not in [tool.pytest.ini_options] pythonpath")
    return sources, images


def image_trees(images: dict[str, list[str]], out: Path, site_packages: str, root: Path = ROOT) -> None:
    """Lay out each image's /app and the .pth putting its folders on sys.path (no PYTHONPATH needed)."""
    for image, folders in images.items():
        tree = out / image
        for folder in folders:
            if not (root / folder).is_dir():
                sys.exit(f"image {image}: source folder {folder} is missing")
            shutil.copytree(root / folder, tree / APP_DIR.lstrip("/") / folder,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        pth = tree / site_packages.lstrip("/") / PTH_NAME
        pth.parent.mkdir(parents=True, exist_ok=True)
        pth.write_text("".join(f"{APP_DIR}/{folder}\n" for folder in folders))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("images")
    sub.add_parser("image").add_argument("name")
    trees = sub.add_parser("image-trees")
    trees.add_argument("out", type=Path)
    # Default: this interpreter's site-packages (the image build runs it with /opt/venv/bin/python).
    trees.add_argument("--site-packages", default=sysconfig.get_path("purelib"))
    args = parser.parse_args()

    sources, images = load()
    if args.command is None:
        print(":".join(str(ROOT / p) for p in sources))
    elif args.command == "images":
        print("\n".join(images))
    elif args.command == "image":
        if args.name not in images:
            sys.exit(f"unknown image {args.name!r}; known: {', '.join(images)}")
        print("\n".join(images[args.name]))
    else:
        image_trees(images, args.out, args.site_packages)


if __name__ == "__main__":
    main()
