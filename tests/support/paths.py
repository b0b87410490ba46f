"""Where things are, for every test."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "files" / "images"
VENV_BIN = ROOT / ".venv" / "bin"
