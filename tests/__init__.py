from pathlib import Path

# The reference project's checkout (manage.py, bench/, ops/); dbops itself is the installed package under apps/.
PROJECT_DIR = Path(__file__).resolve().parents[1]
