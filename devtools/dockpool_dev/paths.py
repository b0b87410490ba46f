"""Where the checkout's files are: the developers' tools are installed editable from it
(scripts/setup.sh), so this package sits in the checkout it serves."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "files" / "images"
VENV_BIN = ROOT / ".venv" / "bin"
