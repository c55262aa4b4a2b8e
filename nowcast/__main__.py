"""`python -m nowcast` runs the command line."""

from nowcast.cli import main

main()
