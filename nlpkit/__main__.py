"""``python -m nlpkit`` runs the CLI."""

from nlpkit.cli import main

main()
