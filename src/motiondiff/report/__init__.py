"""Self-contained HTML reports (index.html) of generation, edit, evaluation and comparison folders, with the
interactive motion player (player.py; assets/ holds its JavaScript and CSS, shipped as package data)."""
